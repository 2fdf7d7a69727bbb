"""Stories: is this entry another outlet's report of a story we already have, a report related
to one (alerted, threaded under it), or a new story?

Outlets rewrite: "Israel and Hamas reach a Gaza ceasefire agreement" and "Hamas accepts draft
ceasefire agreement and release of some hostages" share few words, and those they share are the
words every story of that week uses. So an entry is a bag of content words (`words.py`) from its
headline and summary, weighted by how rare each word is among the entries clustered lately
(TF-IDF), with its sentence embedding when the model is installed, and what it numbers and
dates (`counted.py`: "the second group of hostages" is not the first) (`fingerprint.py`).

The decision (`decide.py`) has three outcomes: the same story only when newswatch is sure
(same URL, or resemblance far over the bar), related when the report resembles a story but may
be another event of the same war (alerted, and threaded under that story in every channel),
new otherwise. One algorithm (`assign.py`) decides for the workers (Redis index) and for
`newswatch stories` (in memory).
"""

from .assign import ATTEMPTS, Assignment, Claim, Index, MemoryIndex, assign, cluster, new_story_id
from .counted import counted, numbered_apart
from .decide import (
    LOOKUP_TERMS,
    MAX_CANDIDATES,
    MAX_MEMBERS,
    MAX_UPDATES,
    POLICY,
    RULE,
    SEMANTIC_DAYS,
    SEMANTIC_PIVOT,
    SEMANTIC_WEIGHT,
    STORIES_READ_PER_WORD,
    UPDATE_TITLE_OVERLAP,
    Decision,
    Outcome,
    Policy,
    Rule,
    Scorer,
    candidates,
    in_window,
    material_update,
    threshold,
)
from .fingerprint import (
    TITLE_WEIGHT,
    TOPIC_WEIGHT,
    DocFreq,
    Fingerprint,
    Member,
    embedder_of,
    embedding_text,
    fingerprint,
    quantize,
    semantic_cosine,
    weights,
)
from .words import Vocabulary, stopwords, terms

__all__ = ["ATTEMPTS", "LOOKUP_TERMS", "MAX_CANDIDATES", "MAX_MEMBERS", "MAX_UPDATES", "POLICY",
    "RULE", "SEMANTIC_DAYS", "SEMANTIC_PIVOT", "SEMANTIC_WEIGHT",
    "STORIES_READ_PER_WORD", "TITLE_WEIGHT", "TOPIC_WEIGHT", "UPDATE_TITLE_OVERLAP",
    "Assignment", "Claim", "Decision", "DocFreq", "Fingerprint", "Index", "Member",
    "MemoryIndex", "Outcome", "Policy", "Rule", "Scorer", "Vocabulary", "assign",
    "candidates", "cluster", "counted", "embedder_of", "embedding_text", "fingerprint",
    "in_window", "material_update", "new_story_id", "numbered_apart", "quantize",
    "semantic_cosine", "stopwords", "terms", "threshold", "weights"]
