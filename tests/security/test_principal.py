import pytest

from moldau.security.principal import ANONYMOUS, KafkaPrincipal


def test_parse_and_text_round_trip() -> None:
    alice = KafkaPrincipal.parse("User:alice")
    assert alice == KafkaPrincipal("User", "alice") and str(alice) == "User:alice"
    assert KafkaPrincipal.parse("User:a:b").name == "a:b"  # only the first colon splits
    assert str(ANONYMOUS) == "User:ANONYMOUS"
    for bad in ("alice", ":alice", ""):
        with pytest.raises(ValueError):
            KafkaPrincipal.parse(bad)
