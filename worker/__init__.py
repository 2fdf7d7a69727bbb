"""newswatch: poll news feeds, match watch topics, deliver one alert per story."""

__version__ = "0.1.0"
