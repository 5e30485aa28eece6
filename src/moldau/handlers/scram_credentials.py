"""DescribeUserScramCredentials (50) and AlterUserScramCredentials (51), KIP-554.

The client sends what RFC 5802 calls SaltedPassword (never the password), with its
salt and iteration count; the broker keeps only StoredKey and ServerKey derived from
it, in the metadata store. Errors as Kafka answers them: RESOURCE_NOT_FOUND for a
user (or a deletion) that has no credential, DUPLICATE_RESOURCE for a user named
twice in one request, UNSUPPORTED_SASL_MECHANISM for an unknown mechanism,
UNACCEPTABLE_CREDENTIAL for iterations outside 4096..16384 or an empty user name.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from moldau.handlers.registry import codec_for, handles
from moldau.protocol.errors import ErrorCode
from moldau.protocol.messages import ALL_APIS
from moldau.security.scram import (
    MAX_ITERATIONS,
    MECHANISM_CODES,
    MIN_ITERATIONS,
    credential_from_salted,
)

DESCRIBE = ALL_APIS[50]
ALTER = ALL_APIS[51]
_describe = codec_for(DESCRIBE)
_alter = codec_for(ALTER)
_DescribeResult = _describe.Response.of("results")
_CredentialInfo = _DescribeResult.of("credential_infos")
_AlterResult = _alter.Response.of("results")
_BY_CODE = {code: name for name, code in MECHANISM_CODES.items()}


@handles(DESCRIBE, 0, 0)
def describe_user_scram_credentials(broker: Any, header: Any, request: Any) -> Any:
    stored = broker.store.scram_credentials()
    results = []
    if request.users is None or not request.users:
        names = sorted(stored)
        duplicates: set[str] = set()
    else:
        counts = Counter(u.name for u in request.users)
        names = list(dict.fromkeys(u.name for u in request.users))
        duplicates = {n for n, c in counts.items() if c > 1}
    for name in names:
        if name in duplicates:
            results.append(_DescribeResult(user=name, error_code=int(ErrorCode.DUPLICATE_RESOURCE),
                                           error_message=f"Cannot describe SCRAM credentials for the same user twice in a single request: {name}",
                                           credential_infos=[]))
        elif name not in stored:
            results.append(_DescribeResult(user=name, error_code=int(ErrorCode.RESOURCE_NOT_FOUND),
                                           error_message=f"Attempt to describe a user credential that does not exist: {name}",
                                           credential_infos=[]))
        else:
            infos = [_CredentialInfo(mechanism=MECHANISM_CODES[m], iterations=int(c["iterations"]))
                     for m, c in sorted(stored[name].items())]
            results.append(_DescribeResult(user=name, error_code=0, error_message=None, credential_infos=infos))
    return _describe.Response(throttle_time_ms=0, error_code=0, error_message=None, results=results)


def _check(name: str, mechanism: int, iterations: int | None) -> tuple[ErrorCode, str] | None:
    if not name:
        return ErrorCode.UNACCEPTABLE_CREDENTIAL, "Username must not be empty"
    if mechanism not in _BY_CODE:
        return ErrorCode.UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism"
    if iterations is not None and not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        return ErrorCode.UNACCEPTABLE_CREDENTIAL, (
            f"Iterations {iterations} must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}")
    return None


@handles(ALTER, 0, 0)
async def alter_user_scram_credentials(broker: Any, header: Any, request: Any) -> Any:
    store = broker.store
    pairs = Counter((d.name, d.mechanism) for d in request.deletions) + Counter(
        (u.name, u.mechanism) for u in request.upsertions)
    counts = dict.fromkeys(name for name, _ in pairs)  # one result per user, in request order
    errors: dict[str, tuple[ErrorCode, str]] = {}
    for (name, _mechanism), count in pairs.items():
        if count > 1:  # the same user and mechanism twice (Kafka's rule)
            errors[name] = (ErrorCode.DUPLICATE_RESOURCE,
                            "A user credential cannot be altered twice in the same request")
    for deletion in request.deletions:
        problem = errors.get(deletion.name) or _check(deletion.name, deletion.mechanism, None)
        if problem is None and _BY_CODE[deletion.mechanism] not in store.scram_credentials().get(deletion.name, {}):
            problem = (ErrorCode.RESOURCE_NOT_FOUND, "Attempt to delete a user credential that does not exist")
        if problem is not None:
            errors[deletion.name] = problem
    for upsertion in request.upsertions:
        problem = errors.get(upsertion.name) or _check(upsertion.name, upsertion.mechanism, upsertion.iterations)
        if problem is None and (not upsertion.salt or not upsertion.salted_password):
            problem = (ErrorCode.UNACCEPTABLE_CREDENTIAL, "Salt and salted password must not be empty")
        if problem is not None:
            errors[upsertion.name] = problem
    results = []
    for deletion in request.deletions:
        if deletion.name not in errors:
            mechs = dict(store.scram_credentials().get(deletion.name, {}))
            mechs.pop(_BY_CODE[deletion.mechanism], None)
            await store.set_scram_credentials(deletion.name, mechs)
    for upsertion in request.upsertions:
        if upsertion.name not in errors:
            mechanism = _BY_CODE[upsertion.mechanism]
            credential = credential_from_salted(mechanism, bytes(upsertion.salt), bytes(upsertion.salted_password),
                                                upsertion.iterations)
            mechs = dict(store.scram_credentials().get(upsertion.name, {}))
            mechs[mechanism] = credential.to_json()
            await store.set_scram_credentials(upsertion.name, mechs)
    for name in counts:
        code, message = errors.get(name, (ErrorCode.NONE, None))
        results.append(_AlterResult(user=name, error_code=int(code), error_message=message))
    return _alter.Response(throttle_time_ms=0, results=results)
