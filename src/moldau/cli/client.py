"""What every client subcommand of ``moldau`` shares: connection options, errors, output.

Theory of operation: the client subcommands (``topic``, ``produce``, ``consume``,
``group``, ``cluster info``) talk to any Kafka cluster through confluent-kafka
(librdkafka), never through the broker's own modules. confluent-kafka is imported
only inside these commands (:func:`kafka`), so ``moldau serve`` starts without it.

Options: ``-b/--brokers`` (``MOLDAU_BROKERS``), the security options, which become
librdkafka properties, and ``-X key=value`` for any other librdkafka property, as kcat
spells it (``-X`` wins). Errors are :class:`CliError`: one plain sentence, naming the
Kafka error (``UNKNOWN_TOPIC_OR_PART``, ``_TRANSPORT``, ...), on stderr, exit status 1.
Unreachable brokers are noticed through librdkafka's ``_ALL_BROKERS_DOWN`` error
callback, so a broker that is down fails the command in well under a second instead
of waiting for the full ``--timeout``.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import click

DEFAULT_BROKERS = "127.0.0.1:9092"
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
#: errors of librdkafka's error callback that mean no broker can be used at all
_FATAL_CONNECT = ("_ALL_BROKERS_DOWN", "_AUTHENTICATION", "_SSL", "_RESOLVE")


class CliError(click.ClickException):
    """One plain sentence for the user; exit status 1, no traceback."""

    def show(self, file: Any = None) -> None:
        click.echo(f"moldau: {self.format_message()}", err=True)


def kafka() -> Any:
    """confluent_kafka, imported on first use (``moldau serve`` never pays for it)."""
    try:
        import confluent_kafka
        import confluent_kafka.admin  # noqa: F401  (the admin submodule, for callers)
    except ImportError:  # pragma: no cover - only without the extra installed
        raise CliError("this command needs confluent-kafka: pip install 'moldau[cli]'") from None
    return confluent_kafka


def error_sentence(exc: BaseException, context: str = "") -> str:
    """``context: what librdkafka or the broker said (KAFKA_ERROR_NAME)`` in one line."""
    err = exc.args[0] if getattr(exc, "args", None) else None
    if err is not None and hasattr(err, "name") and hasattr(err, "str"):
        text = f"{err.str()} ({err.name()})"
    else:
        text = str(exc) or type(exc).__name__
    text = " ".join(text.split())
    return f"{context}: {text}" if context else text


def fail(exc: BaseException, context: str = "") -> CliError:
    return CliError(error_sentence(exc, context))


@dataclass
class Conn:
    """The connection options of one invocation, turned into librdkafka properties."""

    brokers: str = DEFAULT_BROKERS
    security_protocol: str | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    timeout: float = 10.0

    def config(self, **more: Any) -> dict[str, Any]:
        conf: dict[str, Any] = {"bootstrap.servers": self.brokers, "log_level": 0,
                                "client.id": "moldau-cli"}
        protocol = self.security_protocol
        if protocol is None and self.sasl_mechanism:
            protocol = "SASL_SSL" if self.tls_ca or self.tls_cert else "SASL_PLAINTEXT"
        if protocol is None and (self.tls_ca or self.tls_cert):
            protocol = "SSL"
        if protocol:
            conf["security.protocol"] = protocol
        for key, value in (("sasl.mechanism", self.sasl_mechanism),
                           ("sasl.username", self.sasl_username),
                           ("sasl.password", self.sasl_password),
                           ("ssl.ca.location", self.tls_ca),
                           ("ssl.certificate.location", self.tls_cert),
                           ("ssl.key.location", self.tls_key)):
            if value:
                conf[key] = value
        conf.update(more)
        conf.update(self.extra)
        return conf


def key_values(items: Iterable[str], hint: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint=hint)
        out[key.strip()] = value
    return out


def connection_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add the connection options to a command; it receives them as ``conn: Conn``."""
    options = [
        click.option("-b", "--brokers", default=DEFAULT_BROKERS, show_default=True,
                     envvar="MOLDAU_BROKERS", help="Bootstrap brokers, HOST:PORT[,HOST:PORT...]."),
        click.option("--security-protocol", type=click.Choice(SECURITY_PROTOCOLS, case_sensitive=False),
                     default=None, help="Default: SASL_* with --sasl-mechanism, SSL with --tls-*."),
        click.option("--sasl-mechanism", type=click.Choice(SASL_MECHANISMS, case_sensitive=False),
                     default=None),
        click.option("--sasl-username", "--user", default=None, envvar="MOLDAU_SASL_USERNAME"),
        click.option("--sasl-password", "--password", default=None, envvar="MOLDAU_SASL_PASSWORD",
                     help="Also MOLDAU_SASL_PASSWORD (keeps it out of the process list)."),
        click.option("--tls-ca", type=click.Path(dir_okay=False, exists=True), default=None,
                     help="CA certificate(s) (PEM) to verify the brokers."),
        click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True), default=None,
                     help="Client certificate (PEM), for mutual TLS."),
        click.option("--tls-key", type=click.Path(dir_okay=False, exists=True), default=None,
                     help="Client private key (PEM)."),
        click.option("-X", "extra", multiple=True, metavar="KEY=VALUE",
                     help="Any librdkafka property, as kcat's -X; repeatable."),
        click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
                     help="Seconds to wait for the cluster's answers."),
    ]

    @functools.wraps(func)
    def wrapper(*args: Any, brokers: str, security_protocol: str | None, sasl_mechanism: str | None,
                sasl_username: str | None, sasl_password: str | None, tls_ca: str | None,
                tls_cert: str | None, tls_key: str | None, extra: tuple[str, ...], timeout: float,
                **kwargs: Any) -> Any:
        conn = Conn(brokers, security_protocol.upper() if security_protocol else None,
                    sasl_mechanism.upper() if sasl_mechanism else None, sasl_username, sasl_password,
                    tls_ca, tls_cert, tls_key, key_values(extra, "-X"), timeout)
        return func(*args, conn=conn, **kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def format_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
                        show_default=True, help="A readable table, or JSON.")(func)


class ErrorWatch:
    """librdkafka's error callback: remembers what tells that no broker can be reached."""

    def __init__(self) -> None:
        self.errors: list[Any] = []

    def __call__(self, err: Any) -> None:
        self.errors.append(err)

    def fatal(self) -> Any | None:
        names = [e.name() for e in self.errors]
        if not any(n in _FATAL_CONNECT for n in names) and not any(e.fatal() for e in self.errors):
            return None
        # the first concrete cause (connection refused, bad certificate, ...) says most
        for e in self.errors:
            if e.name() != "_ALL_BROKERS_DOWN":
                return e
        return self.errors[0]


def unreachable(conn: Conn, err: Any) -> CliError:
    return CliError(f"could not reach the cluster at {conn.brokers}: "
                    f"{' '.join(err.str().split())} ({err.name()})")


def admin(conn: Conn) -> Any:
    """An AdminClient whose cluster answered a metadata request (else a CliError, quickly)."""
    ck = kafka()
    watch = ErrorWatch()
    client = ck.admin.AdminClient(conn.config(error_cb=watch))
    metadata(client, conn, watch)
    client._moldau_watch = watch  # type: ignore[attr-defined]
    return client


def metadata(client: Any, conn: Conn, watch: ErrorWatch, topic: str | None = None) -> Any:
    """``list_topics`` in short steps, stopping as soon as the brokers are known to be down."""
    ck = kafka()
    deadline = time.monotonic() + conn.timeout
    while True:
        try:
            found = client.list_topics(topic=topic, timeout=min(0.25, max(0.05, deadline - time.monotonic())))
            watch.errors.clear()  # what went wrong before the cluster answered is history now
            return found
        except ck.KafkaException as exc:
            client.poll(0)
            bad = watch.fatal()
            if bad is not None:
                raise unreachable(conn, bad) from None
            if time.monotonic() >= deadline:
                raise fail(exc, f"no answer from {conn.brokers} within {conn.timeout:g} s") from None


def result(future: Any, conn: Conn, context: str) -> Any:
    """Wait for an AdminClient future; a Kafka error becomes a CliError naming it."""
    ck = kafka()
    try:
        return future.result(timeout=conn.timeout + 5)
    except ck.KafkaException as exc:
        raise fail(exc, context) from None
    except TimeoutError:
        raise CliError(f"{context}: no answer within {conn.timeout:g} s (REQUEST_TIMED_OUT)") from None


# -- output ---------------------------------------------------------------------------------------

def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], out: Callable[[str], None] | None = None) -> None:
    """Columns padded to their widest cell, as kafka-topics and rpk print them."""
    out = out or click.echo
    cells = [[_cell(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    out("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in cells:
        out("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def pairs(items: Iterable[tuple[str, Any]]) -> None:
    """A two-column block (``NAME  value``) for one object's fields."""
    items = list(items)
    width = max((len(k) for k, _ in items), default=0)
    for key, value in items:
        click.echo(f"{key.ljust(width)}  {_cell(value)}")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) if value else "-"
    return str(value)


def emit_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")


def emit_rows(rows: list[dict[str, Any]], fmt: str, keys: Sequence[str]) -> None:
    """``rows`` as JSON, or as a table of the ``keys`` columns headed in capitals."""
    if fmt == "json":
        emit_json(rows)
    else:
        table([k.upper() for k in keys], [tuple(r[k] for k in keys) for r in rows])


def settle(futures: dict[str, Any], names: Iterable[str], conn: Conn, kind: str, verb: str,
           status: str | None = None) -> list[dict[str, Any]]:
    """Wait for each name's future of a batch admin call (create, delete), failing with
    "``kind`` 'name' was not ``verb``" at the first error; one ``{kind, status}`` row a
    name, the status ``verb`` unless given."""
    rows = []
    for name in names:
        result(futures[name], conn, f"{kind} {name!r} was not {verb}")
        rows.append({kind: name, "status": status or verb})
    return rows


def split_list(values: Iterable[str]) -> list[str]:
    """``-t a,b -t c`` -> ``[a, b, c]``."""
    return [v.strip() for item in values for v in item.split(",") if v.strip()]
