"""`plimsoll flags`: set, clear, list and audit the gateway's routing flags."""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

from plimsoll.cli.options import add_debug
from plimsoll.common.errors import PlimsollError

if TYPE_CHECKING:
    from plimsoll.common.settings import Settings
    from plimsoll.serving.flags import FlagChange, FlagStore

# Written out rather than generated from plimsoll.serving.flags.FLAGS: building the parser
# of every `plimsoll` command must not import pydantic. tests/test_flags.py keeps them equal.
DESCRIPTION = """\
The flags every `plimsoll serve` replica routes by, changed without a redeploy. They live
in Plimsoll's SQL store (the promotion ledger's database); every change is an audited,
append-only entry (who, when, old → new, reason), and replicas see it within 5 seconds.

flags:
  pin            {version}: serve this model version whatever the alias says
  canary         {version, percent, sticky=user|session}: route that share of traffic to
                 that version, sticky per user (or session)
  answer_mode    answer|facts: facts is the strict cited-quotes template
  strict_safety  on|off: the guard refuses on soft findings too
  shadow         {version, percent}: after serving, also ask that challenger version for
                 that share of requests
Pin wins over canary, canary over the `champion` alias.

Exit 0 when done, 2 on bad input (unknown flag, invalid value, no reason, an unreachable
or read-only store); nothing is written then.
"""
HELP = "set, clear, list and audit the serving flags (canary, pin, answer mode, ...)"

SET_EXAMPLES = """\
examples:
  plimsoll flags set canary version=3 percent=10 --reason "canary v3"
  plimsoll flags set canary version=3 percent=10 sticky=session --reason "canary v3"
  plimsoll flags set pin version=2 --reason "incident 42: v3 cites wrong pages"
  plimsoll flags set answer_mode facts --reason "incident 42"
  plimsoll flags set strict_safety on --by oncall --reason "injection wave"
  plimsoll flags set shadow '{"version": "4", "percent": 5}' --reason "shadow v4"
"""
LEDGER_URL_HELP = ("the flag store's database (default: $PLIMSOLL_LEDGER_URL, else the "
                   "promotion ledger under PLIMSOLL_HOME)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The subcommands of `plimsoll flags`."""
    raw = argparse.RawDescriptionHelpFormatter
    commands = parser.add_subparsers(dest="flags_command", required=True, metavar="SUBCOMMAND")
    set_ = commands.add_parser(
        "set", help="give a flag a new value", formatter_class=raw, epilog=SET_EXAMPLES,
        description="Give a flag a new value; prints old → new. VALUE is one word for "
        "answer_mode (answer|facts) and strict_safety (on|off|true|false), and KEY=VALUE "
        "fields for pin, canary and shadow; one JSON object works for every flag.")
    set_.add_argument("name", metavar="NAME", help="pin, canary, answer_mode, strict_safety "
                      "or shadow")
    set_.add_argument("value", nargs="+", metavar="VALUE",
                      help="a word, KEY=VALUE fields, or one JSON object")
    clear = commands.add_parser(
        "clear", help="put a flag back to its default", formatter_class=raw,
        description="Put a flag back to its default (no pin, no canary, no shadow, the "
        "answer template, the normal guard); the clearing is itself an audited entry.",
        epilog='example:\n  plimsoll flags clear pin --reason "incident 42 resolved"\n')
    clear.add_argument("name", metavar="NAME")
    for sub in (set_, clear):
        sub.add_argument("--reason", required=True,
                         help="why, for the audit trail (required, not empty)")
        sub.add_argument("--by", default=None, metavar="NAME",
                         help="who makes the change (default: $PLIMSOLL_ACTOR, else the OS "
                         "user)")
    listing = commands.add_parser(
        "list", help="every flag, its value (or default), who set it and when",
        formatter_class=raw, epilog="examples:\n  plimsoll flags list\n"
        "  plimsoll flags list --json | jq .\n")
    history = commands.add_parser(
        "history", help="every change of the flags (or of one), oldest first",
        formatter_class=raw, epilog="examples:\n  plimsoll flags history\n"
        "  plimsoll flags history canary --json\n")
    history.add_argument("name", nargs="?", default=None, metavar="NAME",
                         help="only this flag")
    for sub in (listing, history):
        sub.add_argument("--json", action="store_true", help="print JSON lines")
    for sub in (set_, clear, listing, history):
        sub.add_argument("--ledger-url", default=None, metavar="URL", help=LEDGER_URL_HELP)
        add_debug(sub)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run one `plimsoll flags` subcommand; 0 when done."""
    from plimsoll.serving.flags import flag_spec

    url = args.ledger_url or settings.ledger_url
    if args.flags_command in ("set", "clear"):
        spec = flag_spec(args.name)
        actor, reason = _actor(args.by), args.reason.strip()
        if not reason:
            raise PlimsollError("the reason is empty", field="--reason",
                                fix='say why, for the audit trail: --reason "canary for v3"')
        # Checked before the store is opened: bad input must not even create an empty store.
        value = _value(spec, args.value) if args.flags_command == "set" else None
        store = _open(url, create=True)
        with _store_named_as_option(), contextlib.closing(store):
            if args.flags_command == "set":
                change = store.set(spec.name, value, actor=actor, reason=reason)
            else:
                change = store.clear(spec.name, actor=actor, reason=reason)
        print(f"{change.flag}: {_shown(change.flag, change.previous)} → "
              f"{_shown(change.flag, change.value)}  (change {change.change_id} by "
              f"{change.actor}: {change.reason}); replicas follow within seconds")
        return 0
    if args.flags_command == "history" and args.name is not None:
        flag_spec(args.name)
    store = _open(url, create=False)
    with _store_named_as_option(), contextlib.closing(store):
        if args.flags_command == "list":
            return _list(store, args.json)
        return _history(store, args.name, args.json)


def _actor(by: str | None) -> str:
    from plimsoll.release.promotion import current_actor

    actor = " ".join((current_actor() if by is None else by).split())
    if not actor:
        raise PlimsollError("who makes the change is empty", field="--by",
                            fix="pass your name: --by 'Ada Lovelace'")
    return actor


def _value(spec, words: list[str]) -> object:
    """The flag's value from the words after its name, validated."""
    from plimsoll.serving.flags import validate_flag

    if len(words) == 1 and words[0].lstrip().startswith("{"):
        try:
            value = json.loads(words[0])
        except json.JSONDecodeError as exc:
            raise PlimsollError(f"the value of '{spec.name}' is not valid JSON ({exc.msg})",
                                field=spec.name,
                                fix=f"e.g. plimsoll flags set {spec.example}") from None
        return validate_flag(spec.name, value)
    if not spec.is_object:
        if len(words) != 1 or "=" in words[0]:
            raise PlimsollError(f"'{spec.name}' takes one word, not {' '.join(words)!r}",
                                field=spec.name, fix=f"e.g. plimsoll flags set {spec.example}")
        return validate_flag(spec.name, words[0], from_text=True)
    fields: dict[str, str] = {}
    for word in words:
        key, equals, text = word.partition("=")
        if not equals or not key:
            raise PlimsollError(f"'{word}' is not KEY=VALUE", field=spec.name,
                                fix=f"e.g. plimsoll flags set {spec.example}")
        if key in fields:
            raise PlimsollError(f"'{key}' is given twice", field=f"{spec.name}.{key}",
                                fix="give each field once")
        fields[key] = text
    return validate_flag(spec.name, fields, from_text=True)


def _open(url: str, *, create: bool) -> FlagStore:
    """The flag store; a missing one says what creates it."""
    from plimsoll.common.sql import StoreError
    from plimsoll.serving.flags import FlagStore, FlagStoreError

    with _store_named_as_option():
        try:
            return FlagStore(url, create=create)
        except StoreError as exc:
            if create or not _missing_sqlite_file(url):
                raise
            raise FlagStoreError(exc.problem, field=exc.field, fix=f"{exc.fix}. There is "
                                 "no flag store until the first `plimsoll flags set`; until "
                                 "then every flag is at its default") from None


@contextlib.contextmanager
def _store_named_as_option() -> Iterator[None]:
    """A store error names the option that chose the store, --ledger-url."""
    from plimsoll.common.sql import StoreError

    try:
        yield
    except StoreError as exc:
        if exc.field != "url":
            raise
        raise type(exc)(exc.problem, field="--ledger-url", fix=exc.fix) from None


def _missing_sqlite_file(url: str) -> bool:
    from pathlib import Path

    import sqlalchemy as sa

    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return False
    database = parsed.database or ""
    return (parsed.get_backend_name() == "sqlite" and bool(database)
            and not database.startswith("file:") and database != ":memory:"
            and not Path(database).exists())


def _shown(name: str, value: object) -> str:
    """A value as people type it: fields as KEY=VALUE, on/off, '(default: …)' for unset."""
    from plimsoll.serving.flags import FLAGS

    if value is None:
        default = FLAGS[name].default if name in FLAGS else None
        return "(not set)" if default is None else f"(default: {_shown(name, default)})"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict):
        return " ".join(f"{key}={_shown(name, item)}" for key, item in value.items())
    return str(value)


def _list(store: FlagStore, as_json: bool) -> int:
    from plimsoll.serving.flags import FLAGS

    current = store.current()
    for name, spec in FLAGS.items():
        change: FlagChange | None = current.get(name)
        if as_json:
            print(json.dumps({"flag": name, "value": spec.default if change is None
                              else change.value, "set": change is not None,
                              "default": spec.default,
                              "actor": change.actor if change else None,
                              "at": change.at.isoformat() if change else None,
                              "reason": change.reason if change else None,
                              "change": change.change_id if change else None,
                              "help": spec.help}))
        elif change is None:
            print(f"{name:<14} {_shown(name, None):<40} {spec.help}")
        else:
            print(f"{name:<14} {_shown(name, change.value):<40} set by {change.actor} "
                  f"{change.at:%Y-%m-%d %H:%M:%S} UTC: {change.reason}")
    return 0


def _history(store: FlagStore, name: str | None, as_json: bool) -> int:
    changes = store.history(name)
    if not changes and not as_json:
        print(f"no changes of {name or 'any flag'} yet: every flag is at its default")
    for change in changes:
        if as_json:
            print(json.dumps(change.as_dict()))
        else:
            print(f"{change.change_id:>4}  {change.at:%Y-%m-%d %H:%M:%S}  {change.flag:<13} "
                  f"{_shown(change.flag, change.previous)} → "
                  f"{_shown(change.flag, change.value)}  by {change.actor}: {change.reason}")
    return 0
