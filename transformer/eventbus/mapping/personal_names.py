"""Column names that look like personal data, for `eventbus mapping new` to point out.

A starter mapping publishes every column as it is; a column named `email` or `date_of_birth` is
most likely personal and should be classified under `sensitivity:` (and, as `pii`/`phi`, published
hashed or masked). The scaffold cannot know, so it only suggests: the judgement is the author's, and
nothing here changes what the mapping publishes.

Matching is on the name's words (`EmailAddress`, `email_address` and `e-mail` are the same words),
so `zip` is found in `home_zip` but not in `unzipped`.
"""

from __future__ import annotations

import re
from typing import Final

# One word enough: the word itself names personal data
_WORDS: Final = frozenset({
    "ssn", "email", "phone", "telephone", "mobile", "dob", "birth", "birthday", "birthdate", "address",
    "street", "zip", "zipcode", "postal", "postcode", "passport", "surname", "firstname",
    "lastname", "fullname", "iban", "msisdn",
})  # fmt: skip
# Words that name personal data together, in this order
_PHRASES: Final = (
    ("social", "security"), ("first", "name"), ("last", "name"), ("middle", "name"), ("given", "name"),
    ("family", "name"), ("full", "name"), ("maiden", "name"), ("tax", "id"), ("national", "id"),
    ("card", "number"), ("credit", "card"), ("e", "mail"),
)  # fmt: skip


def name_words(name: str) -> list[str]:
    """`homeZIPCode` → home, zip, code; `date_of_birth` → date, of, birth."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", name))
    return re.findall(r"[a-z]+", spaced.lower())


def looks_personal(name: str) -> bool:
    """Does a column's name suggest personal data (an ssn, an email, a birth date, an address...)?"""
    words = name_words(name)
    if any(word in _WORDS for word in words):
        return True
    return any(
        tuple(words[i : i + len(phrase)]) == phrase for phrase in _PHRASES for i in range(len(words))
    )


__all__ = ["looks_personal", "name_words"]
