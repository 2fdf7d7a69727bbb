"""Readers' verdicts per topic and story, kept until deleted (training needs them after the
entries age out), the links already used, and which topics' verdicts were learned from."""

from __future__ import annotations

import json
import uuid
from typing import Any, cast

from .base import Db, Part

# A reader's verdict on a story for a topic (KEYS[1]: the topic's feedback hash), once per
# link (KEYS[2]: the link's key, '' for none): the verdict it replaces, or nothing on a replay.
_RECORD_FEEDBACK = """
if KEYS[2] ~= '' and not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[3]) then
  return {0, ''}
end
local before = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[4], ARGV[5])
return {1, before or ''}
"""


class Verdicts(Part):
    """P:feedback:{topic} (hash story -> verdict JSON), P:fbtoken:{h}, P:feedback-changed,
    P:feedback-learned (hashes topic -> mark)."""

    def __init__(self, db: Db) -> None:
        super().__init__(db)
        self._record = db.r.register_script(_RECORD_FEEDBACK)

    def record(self, topic_id: str, story_id: str, data: dict[str, Any],
               token: str | None, token_ttl: int) -> tuple[bool, str | None]:
        """(recorded?, the verdict it replaced). Not recorded: the token was used before."""
        fresh, before = self._record(
            keys=[self.k("feedback", topic_id), self.k("fbtoken", token) if token else "",
                  self.k("feedback-changed")],
            args=[story_id, json.dumps(data, ensure_ascii=False), token_ttl, topic_id,
                  uuid.uuid4().hex])
        return bool(int(fresh)), (json.loads(before)["verdict"] if before else None)

    def of(self, topic_id: str) -> list[dict[str, Any]]:
        raw = cast(dict[str, str], self.r.hgetall(self.k("feedback", topic_id)))
        return [json.loads(v) for _, v in sorted(raw.items())]

    def unlearned(self) -> dict[str, str]:
        """Topics whose feedback changed since they were last trained on it: topic -> the
        change's mark (give it to `learned` once trained)."""
        changed = cast(dict[str, str], self.r.hgetall(self.k("feedback-changed")))
        learned = cast(dict[str, str], self.r.hgetall(self.k("feedback-learned")))
        return {t: mark for t, mark in changed.items() if learned.get(t) != mark}

    def learned(self, topic_id: str, mark: str) -> None:
        self.r.hset(self.k("feedback-learned"), topic_id, mark)
