"""Will a new key/value schema break the consumers of its subject?

Two answers, because each alone is not enough:

* the registry's verdict (`POST /compatibility/subjects/<s>/versions/latest`), which is what will
  actually be enforced on registration — but Apicurio's ccompat API answers only
  `{"is_compatible": false}` and Confluent gives messages only in verbose mode;
* a local explanation from walking both schemas with Avro's resolution rules (`resolution`), so the
  user sees `field Amount: int → string` lines whatever the registry says.

Every read here runs at start-up in several replicas at once, so nothing in this module writes
except `ensure_level`, which treats a concurrent replica's identical write as its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Literal, TypeVar
from urllib.parse import quote

from confluent_kafka.schema_registry import RegisteredSchema, Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError as ClientRegistryError

from eventbus import defaults
from eventbus.errors import EventBusError
from eventbus.events.avro import registry_failure, registry_unreachable
from eventbus.events.errors import SchemaRegistryError
from eventbus.events.resolution import Incompatibility, explain
from eventbus.events.schema_form import AvroSchema, as_json

T = TypeVar("T")
DEFAULT_LEVEL = defaults.SCHEMA_COMPATIBILITY
LEVELS = frozenset(
    {"NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE"}
)


@dataclass(frozen=True, slots=True)
class CompatibilityResult:
    subject: str
    level: str
    level_source: Literal["subject", "global", "default"]
    latest_version: int | None
    registry_verdict: bool | None
    registry_messages: tuple[str, ...] = ()
    issues: tuple[Incompatibility, ...] = ()
    warnings: tuple[Incompatibility, ...] = ()
    notes: tuple[str, ...] = field(default=())
    # Set when the subject's level is NONE and the change was judged under this (the bus's) level.
    judged_under: str | None = None

    @property
    def unenforced(self) -> bool:
        """Under NONE the registry accepts anything: a verdict then proves nothing."""
        return self.level == "NONE"

    @property
    def applied_level(self) -> str:
        """The level the verdict is under."""
        return self.judged_under or self.level

    @property
    def compatible(self) -> bool:
        """The registry's verdict when it gave one (it is what registration enforces), else ours."""
        if self.registry_verdict is not None:
            return self.registry_verdict
        return not self.issues

    @property
    def new_subject(self) -> bool:
        return self.latest_version is None


# --- against the registry --------------------------------------------------------------------------


def check_compatibility(
    client: SchemaRegistryClient,
    subject: str,
    schema: AvroSchema,
    *,
    default_level: str = DEFAULT_LEVEL,
    judge_none: bool = False,
) -> CompatibilityResult:
    """Check `schema` against what `subject` holds, with the registry's verdict and our reasons.

    `judge_none`: when the subject's level is NONE the registry accepts anything, so its verdict
    proves nothing; judge the change under `default_level` (the bus's) by the local analysis instead.
    """
    notes: list[str] = []
    level, source = _subject_level(client, subject, default_level, notes)
    judged_under = default_level if judge_none and level == "NONE" and default_level != "NONE" else None
    latest = _latest(client, subject)
    if latest is None:
        notes.append("the subject has no versions yet: registering creates version 1")
        return CompatibilityResult(subject, level, source, None, None, notes=tuple(notes))
    applied = judged_under or level
    olds: list[RegisteredSchema] = [latest]
    if applied.endswith("_TRANSITIVE"):
        olds = [
            _read(f"{subject}: reading version {v}", partial(client.get_version, subject, v))
            for v in sorted(_read(f"{subject}: listing its versions", partial(client.get_versions, subject)))
        ]
    issues: list[Incompatibility] = []
    warnings: list[Incompatibility] = []
    for old in olds:
        old_text = old.schema.schema_str
        if old_text is None:  # the client reads an answer without a "schema" field as None
            raise SchemaRegistryError(
                f"{subject}: the registry returned version {old.version} without its text"
            )
        found, warned = explain(schema, json.loads(old_text), applied)
        version = old.version if len(olds) > 1 else None
        issues += [Incompatibility(i.path, i.message, version) for i in found]
        warnings += [Incompatibility(w.path, w.message, version) for w in warned]
    if judged_under is not None:
        notes.append(
            f"the subject's registry level is NONE, under which the registry accepts any change: "
            f"judged under the bus's level {judged_under} by the local analysis"
        )
        verdict: bool | None = None
        messages: list[str] = []
    else:
        verdict, messages = _registry_verdict(client, subject, schema, level, notes)
    if verdict is True and issues:
        notes.append(
            f"the registry accepts this schema, but under {level} the local analysis finds problems; "
            "check the registry's compatibility level"
        )
    return CompatibilityResult(
        subject,
        level,
        source,
        latest.version,
        verdict,
        tuple(messages),
        tuple(issues),
        tuple(warnings),
        tuple(notes),
        judged_under,
    )


def _read(what: str, call: Callable[[], T]) -> T:
    """A read the verdict depends on. A 5xx or a transport error means the registry is not serving
    now: `ServiceUnavailableError`, which the service waits out (`app.wait_for_registry`, one log line
    per attempt) rather than deciding on a default; any other refusal is final."""
    try:
        return call()
    except EventBusError:
        raise
    except Exception as error:
        raise _failure(error, what) from None


def _read_or_none(what: str, call: Callable[[], T], absent: Callable[[int], bool]) -> T | None:
    """`_read`, with None for an answer whose status `absent` says means "not there"."""
    try:
        return call()
    except EventBusError:
        raise
    except ClientRegistryError as error:
        if absent(error.http_status_code):
            return None
        raise _failure(error, what) from None
    except Exception as error:
        raise _failure(error, what) from None


def _failure(error: Exception, what: str) -> EventBusError:
    if isinstance(error, ClientRegistryError):
        return registry_failure(error, what)
    return registry_unreachable(error)


def _not_found(status: int) -> bool:
    return status == 404


def _refused(status: int) -> bool:
    """A 4xx: the registry answered, and does not serve this (an API or a parameter it lacks)."""
    return 400 <= status < 500


def _subject_level(
    client: SchemaRegistryClient, subject: str, default: str, notes: list[str]
) -> tuple[str, Literal["subject", "global", "default"]]:
    """The level the registry applies to the subject, and where it comes from: the subject's own, the
    registry's global one, or (the registry reports none) `default`."""
    if _is_mock(client):
        # The `mock://` registry has no config endpoint; asking would retry HTTP for seconds.
        notes.append(f"the mock registry keeps no compatibility level; checked under {default}")
        return default, "default"
    # A subject without a level of its own: Confluent answers 404.
    own_level = _read_or_none(
        f"{subject}: reading its compatibility level", partial(client.get_compatibility, subject), _not_found
    )
    own = own_level.upper() if own_level else None
    effective = _effective_level(client, subject)
    if effective is not None:
        # Apicurio reports NONE for a subject without a level of its own, and enforces the global
        # one: only the registry's "subject or else global" answer says what applies.
        return effective, ("subject" if own == effective else "global")
    if own is not None:
        return own, "subject"
    global_level = _read_or_none(
        "reading the registry's global compatibility level", client.get_compatibility, _refused
    )
    if not global_level:
        notes.append(f"the registry reports no compatibility level; checked under {default}")
        return default, "default"
    return global_level.upper(), "global"


def _effective_level(client: SchemaRegistryClient, subject: str) -> str | None:
    """`GET /config/<subject>?defaultToGlobal=true` (Confluent and Apicurio both answer it); None when
    the registry does not. The client has no parameter for it, hence its REST client."""
    path = f"config/{quote(subject, safe='')}"
    answer = _read_or_none(
        f"{subject}: reading its effective compatibility level",
        partial(client._rest_client.get, path, query={"defaultToGlobal": "true"}),
        _refused,
    )
    level = answer.get("compatibilityLevel") if isinstance(answer, dict) else None
    return level.upper() if isinstance(level, str) else None


def ensure_level(client: SchemaRegistryClient, subject: str, level: str) -> None:
    """Set `subject`'s own compatibility level to `level`.

    Replicas and deploy jobs run this together: when a concurrent one created the rule first,
    Apicurio answers HTTP 409 ("A rule named 'COMPATIBILITY' already exists"). That is success if
    the level now in force is the one asked for: re-read it and verify, instead of failing."""
    try:
        client.set_compatibility(subject, level)
        return
    except EventBusError:
        raise
    except ClientRegistryError as error:
        if error.http_status_code != 409:
            raise registry_failure(error, f"{subject}: setting compatibility {level}") from None
    except Exception as error:
        raise registry_unreachable(error) from None
    now = _read(f"{subject}: reading its compatibility level", partial(client.get_compatibility, subject))
    if now.upper() != level.upper():
        raise SchemaRegistryError(
            f"{subject}: setting compatibility {level} conflicted with a concurrent change; the subject's "
            f"level is now {now.upper()}: set the level you mean (the registry's config API) and run again"
        )


def _is_mock(client: SchemaRegistryClient) -> bool:
    # confluent-kafka exports the mock class only from a private module; the name is stable.
    return type(client).__name__ == "MockSchemaRegistryClient"


def _latest(client: SchemaRegistryClient, subject: str) -> RegisteredSchema | None:
    return _read_or_none(
        f"{subject}: reading the latest version", partial(client.get_latest_version, subject), _not_found
    )


def _registry_verdict(
    client: SchemaRegistryClient, subject: str, schema: AvroSchema, level: str, notes: list[str]
) -> tuple[bool | None, list[str]]:
    candidate = Schema(as_json(schema), "AVRO")
    if _is_mock(client):
        notes.append("the mock registry cannot check compatibility; the verdict is the local analysis")
        return None, []
    if level.endswith("_TRANSITIVE"):
        # `versions/latest` checks one version only; transitive levels need every version.
        ask = partial(client.test_compatibility_all_versions, subject, candidate, verbose=True)
    else:
        ask = partial(client.test_compatibility, subject, candidate, verbose=True)
    # A registry that does not serve the check (a 4xx) leaves the local analysis to decide; one that
    # is not serving at all is waited for, never replaced by our verdict.
    answer = _read_or_none(f"{subject}: asking for the compatibility verdict", ask, _refused)
    if answer is None:
        notes.append("the registry could not run its compatibility check; the verdict is the local analysis")
        return None, []
    if answer:
        return True, []
    return False, _verbose_messages(client, subject, candidate)


def _verbose_messages(client: SchemaRegistryClient, subject: str, candidate: Schema) -> list[str]:
    # `test_compatibility` returns only the boolean and drops the `messages` a Confluent registry
    # sends in verbose mode; repeat the request through the client's own REST session (same auth)
    # to keep them. Apicurio sends none, which is why the local explanation exists.
    rest = getattr(client, "_rest_client", None)
    if rest is None:
        return []
    try:
        response = rest.post(
            f"compatibility/subjects/{subject}/versions/latest?verbose=true", body=candidate.to_dict()
        )
    except Exception:
        return []
    messages = response.get("messages") if isinstance(response, dict) else None
    return [str(m) for m in messages] if isinstance(messages, list) else []
