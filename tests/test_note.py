"""C2SP signed notes, checkpoints and cosignatures.

Published vectors: golang.org/x/mod/sumdb/note's PeterNeumann / EnochRoot
keys and signatures (tests/vectors/note/sumdb-note.json), the C2SP
tlog-checkpoint example body and the tlog-cosignature signed-message example.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from auditsvc_sdk._note import (
    MAX_NOTE_SIZE,
    Checkpoint,
    CheckpointError,
    CosignatureSigner,
    CosignatureVerifier,
    InvalidSignatureError,
    KeyFormatError,
    MalformedNoteError,
    NoteError,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    UnverifiedNoteError,
    cosign,
    cosignature_message,
    note_key_id,
    open_checkpoint,
    open_note,
    sign_checkpoint,
    sign_note,
    verifier_from_vkey,
    verify_cosignature,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

VECTORS = Path(__file__).parent / "vectors" / "note"
GO = json.loads((VECTORS / "sumdb-note.json").read_text(encoding="utf-8"))
COSIG = json.loads((VECTORS / "cosignature-v1.json").read_text(encoding="utf-8"))

TEXT = GO["text"]
PETER_SIG = GO["peter_sig"]
ENOCH_SIG = GO["enoch_sig"]
PETER = NoteVerifier.from_vkey(GO["peter"]["vkey"])
ENOCH = NoteVerifier.from_vkey(GO["enoch"]["vkey"])

# The C2SP tlog-checkpoint example body.
SOFA = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"


def sig(line: str) -> NoteSignature:
    return NoteSignature.parse(line)


def with_inserted_abcd(line: str) -> str:
    """Go's test: still valid base64, no longer a valid signature."""
    return line[:60] + "ABCD" + line[60:]


# --- golang.org/x/mod/sumdb/note vectors ---------------------------------------------------


def test_go_signer_key_signs_the_published_note():
    signer = NoteSigner.from_skey(GO["peter"]["skey"])
    assert signer.name == "PeterNeumann"
    assert signer.key_id == 0xC74F20A3
    assert signer.vkey == GO["peter"]["vkey"]
    assert signer.skey == GO["peter"]["skey"]
    assert sign_note(TEXT, signer) == TEXT + "\n" + PETER_SIG
    assert sign_note(TEXT, [signer]) == TEXT + "\n" + PETER_SIG


def test_go_verifier_keys_round_trip():
    assert PETER.name == "PeterNeumann" and PETER.key_id == 0xC74F20A3
    assert PETER.vkey == GO["peter"]["vkey"]
    assert ENOCH.vkey == GO["enoch"]["vkey"]
    assert verifier_from_vkey(GO["peter"]["vkey"]) == PETER
    assert NoteVerifier.from_public_key("PeterNeumann", PETER.public_key) == PETER
    assert NoteVerifier("PeterNeumann", 0xC74F20A3, Ed25519PublicKey.from_public_bytes(PETER.public_key)) == PETER


def test_key_id_is_the_spec_formula():
    pub = PETER.public_key
    assert note_key_id("PeterNeumann", 1, pub) == int.from_bytes(
        hashlib.sha256(b"PeterNeumann\n\x01" + pub).digest()[:4], "big"
    )
    with pytest.raises(KeyFormatError, match="does not match"):
        NoteVerifier("PeterNeumann", 0xC74F20A4, pub)


def test_mangled_verifier_keys_are_refused():
    vkey = GO["peter"]["vkey"]
    for i in range(len(vkey) + 1):
        for j in range(i + 1, len(vkey) + 1):
            if (i, j) != (0, len(vkey)):
                with pytest.raises(NoteError):
                    NoteVerifier.from_vkey(vkey[i:j])
    for i in range(len(vkey)):
        mangled = vkey[:i] + chr(ord(vkey[i]) + 1) + vkey[i + 1 :]
        with pytest.raises(NoteError):
            NoteVerifier.from_vkey(mangled)
    for bad in GO["bad_vkeys"]:  # wrong key length, unknown algorithm (key IDs adjusted)
        with pytest.raises(KeyFormatError):
            NoteVerifier.from_vkey(bad)


def test_mangled_signer_keys_are_refused():
    skey = GO["peter"]["skey"]
    for i in range(len(skey) + 1):
        for j in range(i + 1, len(skey) + 1):
            if (i, j) != (0, len(skey)):
                with pytest.raises(KeyFormatError):
                    NoteSigner.from_skey(skey[i:j])
    for i in range(len(skey)):
        mangled = skey[:i] + chr(ord(skey[i]) + 1) + skey[i + 1 :]
        with pytest.raises(NoteError):
            NoteSigner.from_skey(mangled)


def test_open_with_one_known_key_of_two():
    note = open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [PETER])
    assert note.text == TEXT
    assert note.signatures == (sig(PETER_SIG),)
    assert note.unverified == (sig(ENOCH_SIG),)
    assert note.signatures[0].line == PETER_SIG


def test_open_with_both_keys_known():
    note = open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [PETER, ENOCH])
    assert note.signatures == (sig(PETER_SIG), sig(ENOCH_SIG))
    assert note.unverified == ()


def test_open_with_no_known_key():
    with pytest.raises(UnverifiedNoteError, match="no verifiable signatures") as err:
        open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [])
    assert err.value.unverified == (sig(PETER_SIG), sig(ENOCH_SIG))


def test_invalid_signature_from_a_known_key_names_the_key():
    with pytest.raises(InvalidSignatureError, match=r"invalid signature for key PeterNeumann\+c74f20a3") as err:
        open_note(TEXT + "\n" + with_inserted_abcd(PETER_SIG), [PETER])
    assert (err.value.name, err.value.key_id) == ("PeterNeumann", 0xC74F20A3)


def test_duplicate_signatures_are_reported_once():
    enoch_abcd = with_inserted_abcd(ENOCH_SIG)
    note = open_note(TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG + enoch_abcd, [PETER])
    assert note.signatures == (sig(PETER_SIG),)
    assert note.unverified == (sig(ENOCH_SIG), sig(enoch_abcd))


def test_a_bad_duplicate_from_a_known_key_is_not_skipped():
    # Stricter than Go (which verifies only the first): every signature from a
    # known key is checked.
    with pytest.raises(InvalidSignatureError):
        open_note(TEXT + "\n" + PETER_SIG + with_inserted_abcd(PETER_SIG), [PETER])


@pytest.mark.parametrize(
    "msg",
    [
        TEXT,
        TEXT + "\n",
        TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + TEXT + "\n" + PETER_SIG,
        b"\xff" + (TEXT + "\n" + PETER_SIG).encode(),
        TEXT
        + "\n"
        + "— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=",
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        TEXT + "\n" + PETER_SIG.replace("— ", "- "),
        TEXT + "\n" + PETER_SIG.replace("— ", "—"),
        TEXT + "\n" + PETER_SIG.replace("=\n", "\n"),
        TEXT + "\n" + PETER_SIG.replace(" x08go", "  x08go"),
        TEXT + "\n" + "— PeterNeumann AAAA\n",
        TEXT + "\n" + PETER_SIG + "\n",
        TEXT.replace("\n", "\r\n") + "\n" + PETER_SIG,
        TEXT + "\n" + PETER_SIG.replace("\n", "\r\n"),
    ],
    ids=[
        "text only",
        "no signature",
        "no final newline",
        "control character",
        "invalid UTF-8",
        "name with a space",
        "trailing garbage",
        "hyphen for em dash",
        "no space after em dash",
        "base64 missing padding",
        "two spaces",
        "signature too short",
        "trailing blank line",
        "CRLF text",
        "CRLF signature",
    ],
)
def test_malformed_notes(msg):
    with pytest.raises(MalformedNoteError):
        open_note(msg, [PETER])


def test_too_many_signatures():
    with pytest.raises(MalformedNoteError, match="more than 100"):
        open_note(TEXT + "\n" + PETER_SIG * 101, [PETER])
    assert open_note(TEXT + "\n" + PETER_SIG * 16, [PETER]).signatures == (sig(PETER_SIG),)


def test_oversized_note():
    big = "x" * 80 + "\n"
    text = big * (MAX_NOTE_SIZE // len(big) + 1)
    with pytest.raises(MalformedNoteError, match="larger than"):
        open_note(text + "\n" + PETER_SIG, [PETER])
    with pytest.raises(MalformedNoteError, match="larger than"):
        open_note((text + "\n" + PETER_SIG).encode(), [PETER])
    with pytest.raises(ValueError, match="larger than"):
        sign_note(text, NoteSigner.generate("big"))


def test_signatures_sharing_only_the_name_or_only_the_id_are_ignored():
    raw = base64.b64decode(PETER_SIG.split()[-1])
    other_id = "— PeterNeumann " + base64.b64encode(b"\x00\x00\x00\x01" + raw[4:]).decode() + "\n"
    other_name = PETER_SIG.replace("PeterNeumann", "CarmenSandiego")
    with pytest.raises(UnverifiedNoteError):
        open_note(TEXT + "\n" + other_id + other_name, [PETER])
    note = open_note(TEXT + "\n" + other_id + other_name + PETER_SIG, [PETER])
    assert note.signatures == (sig(PETER_SIG),)
    assert len(note.unverified) == 2


# --- round trips and tampering ------------------------------------------------------------


def test_round_trip_with_a_new_key():
    signer = NoteSigner.generate("log.example/test")
    note = sign_note("hello\n", signer)
    opened = open_note(note, [NoteVerifier.from_vkey(signer.vkey)])
    assert opened.text == "hello\n"
    assert opened.signatures[0].name == "log.example/test"
    assert open_note(note.encode(), [signer.verifier]).text == "hello\n"


def test_text_may_contain_blank_lines():
    # The C2SP signed-note example: the signatures follow the *last* blank line.
    text = "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n"
    signer = NoteSigner.generate("quasimodo.example/salvatore")
    assert open_note(sign_note(text, signer), [signer.verifier]).text == text


def test_tampering_is_detected():
    signer = NoteSigner.generate("log.example/test")
    note = sign_note("size 10\n", signer)
    text, line = note.split("\n\n")
    raw = bytearray(base64.b64decode(line.split()[-1]))
    raw[20] ^= 1
    flipped = text + "\n\n— log.example/test " + base64.b64encode(bytes(raw)).decode() + "\n"
    with pytest.raises(InvalidSignatureError):
        open_note(flipped, [signer.verifier])
    with pytest.raises(InvalidSignatureError):
        open_note(note.replace("size 10", "size 11"), [signer.verifier])
    impostor = NoteSigner.generate("log.example/test")  # same name, another key: another key ID
    with pytest.raises(UnverifiedNoteError):
        open_note(sign_note("size 10\n", impostor), [signer.verifier])
    with pytest.raises(MalformedNoteError):
        open_note(note.replace("\n\n", "\n"), [signer.verifier])  # missing blank line
    with pytest.raises(MalformedNoteError):
        open_note(note[:-1], [signer.verifier])  # missing final newline
    with pytest.raises(MalformedNoteError):
        open_note(note + "garbage\n", [signer.verifier])


def test_sign_note_refuses_bad_input():
    signer = NoteSigner.generate("log.example/test")
    with pytest.raises(MalformedNoteError, match="end with a newline"):
        sign_note("abc", signer)
    with pytest.raises(MalformedNoteError, match="control character"):
        sign_note("a\tb\n", signer)
    with pytest.raises(MalformedNoteError):
        sign_note("lone \ud800 surrogate\n", signer)
    with pytest.raises(ValueError, match="at least one signer"):
        sign_note("abc\n", [])
    with pytest.raises(ValueError, match="given twice"):
        sign_note("abc\n", [signer, signer])


@pytest.mark.parametrize("name", ["", "a+b", "a b", "a\tb", "a\u00a0b", "a\u2003b", "a\nb", "\ud800"])
def test_key_names_without_white_space_or_plus(name):
    with pytest.raises(KeyFormatError):
        NoteSigner.generate(name)


def test_private_key_pem_round_trip():
    signer = NoteSigner.generate("log.example/test")
    pem = signer.private_key_pem()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    again = NoteSigner.from_pem("log.example/test", pem)
    assert again.vkey == signer.vkey
    assert sign_note("x\n", again) == sign_note("x\n", signer)
    assert NoteSigner.from_skey(signer.skey).vkey == signer.vkey
    assert "PRIVATE" not in repr(signer)
    encrypted = signer._key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    assert NoteSigner.from_pem("log.example/test", encrypted, password=b"pw").vkey == signer.vkey
    with pytest.raises(KeyFormatError):
        NoteSigner.from_pem("log.example/test", encrypted)
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(KeyFormatError, match="not Ed25519"):
        NoteSigner.from_pem("log.example/test", ec_pem)


# --- checkpoints ---------------------------------------------------------------------------


def test_checkpoint_format_and_parse():
    cp = Checkpoint.parse(SOFA)
    assert cp.origin == "example.com/behind-the-sofa"
    assert cp.size == 20852163
    assert cp.root_hash == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert cp.body() == SOFA
    ext = Checkpoint("log.example/a", 0, bytes(32), ("extension one", "two"))
    assert ext.body() == "log.example/a\n0\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nextension one\ntwo\n"
    assert Checkpoint.parse(ext.body()) == ext
    assert Checkpoint.parse(f"o\n{2**64 - 1}\n{base64.b64encode(bytes(32)).decode()}\n").size == 2**64 - 1


ROOT_B64 = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="


@pytest.mark.parametrize(
    "text",
    [
        f"o\n007\n{ROOT_B64}\n",
        f"o\n+5\n{ROOT_B64}\n",
        f"o\n-1\n{ROOT_B64}\n",
        f"o\n 5\n{ROOT_B64}\n",
        f"o\n5 \n{ROOT_B64}\n",
        f"o\n0x10\n{ROOT_B64}\n",
        f"o\n1_000\n{ROOT_B64}\n",
        f"o\n\uff11\n{ROOT_B64}\n",
        f"o\n{2**64}\n{ROOT_B64}\n",
        f"o\n\n{ROOT_B64}\n",
        "o\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n",
        "o\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n",
        "o\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jx\n",
        "o\n5\nCsUYapGGPo4dkMgIAUqom_Xajj7h2fB2MPA3j2jxq2I=\n",
        f"o\n5\n{ROOT_B64} \n",
        f"\n5\n{ROOT_B64}\n",
        f"o\n5\n{ROOT_B64}\n\n",
        f"o\n5\n{ROOT_B64}\next\n\n",
        f"o\n5\n{ROOT_B64}",
        "o\n5\n",
        "",
    ],
    ids=[
        "leading zeros",
        "plus sign",
        "negative",
        "leading space",
        "trailing space",
        "hex",
        "underscore",
        "fullwidth digit",
        "size above uint64",
        "empty size",
        "root without padding",
        "root with non-canonical bits",
        "root of 30 bytes",
        "root in URL-safe base64",
        "space after root",
        "empty origin",
        "empty extension line",
        "empty line after an extension",
        "no final newline",
        "two lines",
        "empty",
    ],
)
def test_checkpoint_parse_is_strict(text):
    with pytest.raises(CheckpointError):
        Checkpoint.parse(text)


def test_checkpoint_constructor_checks_its_fields():
    with pytest.raises(CheckpointError):
        Checkpoint("", 1, bytes(32))
    with pytest.raises(CheckpointError):
        Checkpoint("a\nb", 1, bytes(32))
    with pytest.raises(CheckpointError):
        Checkpoint("o", -1, bytes(32))
    with pytest.raises(CheckpointError):
        Checkpoint("o", True, bytes(32))
    with pytest.raises(CheckpointError):
        Checkpoint("o", 1, bytes(31))
    with pytest.raises(CheckpointError):
        Checkpoint("o", 1, bytes(32), ("",))
    with pytest.raises(CheckpointError):
        Checkpoint("o", 1, bytes(32), "ext")  # type: ignore[arg-type]


def test_signed_checkpoint_round_trip():
    log = NoteSigner.generate("log.example/audit")
    cp = Checkpoint("log.example/audit", 42, hashlib.sha256(b"root").digest())
    note = sign_checkpoint(cp, log)
    opened, signed = open_checkpoint(note, [log.verifier], origin="log.example/audit")
    assert opened == cp
    assert signed.signatures[0].name == "log.example/audit"
    with pytest.raises(CheckpointError, match=r"not 'log\.example/other'"):
        open_checkpoint(note, [log.verifier], origin="log.example/other")
    with pytest.raises(CheckpointError):
        open_checkpoint(sign_note("not a checkpoint\n", log), [log.verifier])


# --- cosignatures ------------------------------------------------------------------------


def test_cosignature_message_is_the_spec_example():
    assert cosignature_message(SOFA, 1679315147) == COSIG["signed_message"].encode()
    assert COSIG["signed_message"] == "cosignature/v1\ntime 1679315147\n" + SOFA
    with pytest.raises(ValueError):
        cosignature_message(SOFA, 2**63)
    with pytest.raises(ValueError):
        cosignature_message(SOFA, -1)


def test_cosignature_regression_vector():
    witness = CosignatureSigner(COSIG["witness_name"], bytes.fromhex(COSIG["witness_seed_hex"]))
    assert witness.vkey == COSIG["witness_vkey"]
    assert witness.key_id == note_key_id(witness.name, 0x04, witness.public_key)
    assert witness.key_id == int.from_bytes(
        hashlib.sha256(witness.name.encode() + b"\n\x04" + witness.public_key).digest()[:4], "big"
    )
    line = cosign(COSIG["checkpoint"], witness, COSIG["timestamp"])
    assert line == COSIG["cosignature_line"]
    raw = base64.b64decode(line.split()[-1])
    assert len(raw) == 4 + 8 + 64
    assert raw[:4] == witness.key_id.to_bytes(4, "big")
    assert raw[4:12] == COSIG["timestamp"].to_bytes(8, "big")
    # The Ed25519 signature is over the spec's message, checked without the module.
    Ed25519PublicKey.from_public_bytes(witness.public_key).verify(raw[12:], COSIG["signed_message"].encode())


def test_cosignature_round_trip_and_tamper():
    log = NoteSigner.generate("log.example/audit")
    witness = CosignatureSigner.generate("witness.example/w1")
    verifier = CosignatureVerifier.from_vkey(witness.vkey)
    assert verifier_from_vkey(witness.vkey) == verifier
    body = Checkpoint("log.example/audit", 7, hashlib.sha256(b"r").digest()).body()
    line = cosign(body, witness, 1_700_000_000)
    assert verify_cosignature(body, line, verifier) == 1_700_000_000

    # The witness's response concatenated to the checkpoint opens as a note.
    note = open_note(sign_note(body, log) + line, [verifier])
    assert CosignatureVerifier.timestamp(note.signatures[0].signature) == 1_700_000_000
    assert open_note(sign_note(body, log) + line, [verifier, log.verifier]).unverified == ()

    raw = bytearray(base64.b64decode(line.split()[-1]))
    for position in (11, 12, 40, 75):  # the timestamp and the signature
        bad = bytearray(raw)
        bad[position] ^= 1
        bad_line = "— witness.example/w1 " + base64.b64encode(bytes(bad)).decode() + "\n"
        with pytest.raises(InvalidSignatureError):
            verify_cosignature(body, bad_line, verifier)
    with pytest.raises(InvalidSignatureError):
        verify_cosignature(body.replace("\n7\n", "\n8\n"), line, verifier)
    other = CosignatureSigner.generate("witness.example/w2")
    with pytest.raises(NoteError, match=r"not witness\.example/w1"):
        verify_cosignature(body, cosign(body, other, 1), verifier)
    short = "— witness.example/w1 " + base64.b64encode(bytes(raw[:40])).decode() + "\n"
    with pytest.raises(MalformedNoteError, match="72 bytes"):
        verify_cosignature(body, short, verifier)
    too_late = bytes(raw[:4]) + (2**63).to_bytes(8, "big") + bytes(raw[12:])
    with pytest.raises(InvalidSignatureError):
        verify_cosignature(body, "— witness.example/w1 " + base64.b64encode(too_late).decode() + "\n", verifier)
    with pytest.raises(ValueError):
        cosign(body, witness, 2**63)
    with pytest.raises(CheckpointError):
        cosign("not a checkpoint\n", witness, 1)


def test_a_cosignature_key_is_not_a_note_key():
    witness = CosignatureSigner.generate("witness.example/w1")
    as_note_key = NoteVerifier.from_public_key(witness.name, witness.public_key)
    assert as_note_key.key_id != witness.key_id
    body = Checkpoint("log.example/audit", 1, bytes(32)).body()
    with pytest.raises(UnverifiedNoteError):
        open_note(body + "\n" + cosign(body, witness, 5), [as_note_key])
    with pytest.raises(KeyFormatError, match="is not 0x01"):
        NoteVerifier.from_vkey(witness.vkey)
    with pytest.raises(KeyFormatError, match="is not 0x04"):
        CosignatureVerifier.from_vkey(NoteSigner.generate("log.example/a").vkey)


def test_cosignature_signer_signs_notes_with_its_clock():
    witness = CosignatureSigner.generate("witness.example/w1")
    witness.clock = lambda: 1234.9
    body = Checkpoint("log.example/audit", 3, bytes(32)).body()
    note = sign_note(body, witness)
    assert note == body + "\n" + cosign(body, witness, 1234)
    opened = open_note(note, [witness.verifier])
    assert CosignatureVerifier.timestamp(opened.signatures[0].signature) == 1234
