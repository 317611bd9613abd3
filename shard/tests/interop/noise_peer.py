#!/usr/bin/env python3
"""An independent ringwire protocol-v2 peer, written from docs/PROTOCOL.md with Python's
`noiseprotocol` package (its Noise implementation; `cryptography` underneath) and `hashlib`.
Driven by shard/tests/session_interop.rs; shares no code with the Rust implementation.

  noise_peer.py vectors
      Prints PROTOCOL.md §13's test vectors, computed here, in the document's format.
  noise_peer.py initiate RESPONDER_PUBLIC_HEX UNIX_SECS
      Acts as an initiator over stdin/stdout, one hex datagram per line:
        out: "initiation HEX"   in: "response HEX"
        out: "data HEX"  (Data "hello from python", packet number 0)
        in:  "data HEX"  (the responder's Data)   out: "got TEXT"
"""
import struct
import sys
import warnings

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives import serialization
import hashlib
from noise.connection import Keypair, NoiseConnection

NAME = b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"
PSK = bytes(32)
warnings.filterwarnings("ignore", message="One of ephemeral keypairs is already set")


def HASH(*parts):
    h = hashlib.blake2s()
    for p in parts:
        h.update(p)
    return h.digest()


def MAC(key, data):
    return hashlib.blake2s(data, key=key, digest_size=16).digest()


def public(priv):
    return X25519PrivateKey.from_private_bytes(priv).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def header(ty, dst, pn, flags=0):
    return bytes([0x20 | ty, flags, 0, 0]) + struct.pack(">QQ", dst, pn)


def tai64n(secs, nanos=0):
    return struct.pack(">QI", secs + (1 << 62), nanos)


def initiation(i_priv, r_pub, cid, attempt, ts, eph=None):
    route = HASH(public(i_priv), struct.pack(">Q", cid))[0]
    head = bytes([0x21, 0, 0, 0, route]) + bytes(7) + struct.pack(">QQ", attempt, cid)
    n = NoiseConnection.from_name(NAME)
    n.set_as_initiator()
    n.set_keypair_from_private_bytes(Keypair.STATIC, i_priv)
    n.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, r_pub)
    if eph is not None:
        n.set_keypair_from_private_bytes(Keypair.EPHEMERAL, eph)
    n.set_psks(psk=PSK)
    n.set_prologue(b"ringwire v2" + head)
    n.start_handshake()
    msg = head + bytes(n.write_message(ts))
    assert len(msg) == 136
    msg += MAC(HASH(b"ringwire v2 mac1", r_pub), msg)
    msg += bytes(16)  # mac2: no cookie
    return n, msg


def read_response(n, i_priv, resp, cid):
    assert len(resp) == 108 and resp[0] == 0x22
    assert struct.unpack(">Q", resp[4:12])[0] == cid
    assert resp[92:] == MAC(HASH(b"ringwire v2 mac1", public(i_priv)), resp[:92]), "mac1"
    payload = bytes(n.read_message(resp[20:92]))
    assert n.handshake_finished
    return struct.unpack(">Q", payload[:8])[0], payload[8:24]


def seal(cipher_state, ty, dst, pn, plaintext):
    h = header(ty, dst, pn)
    cipher_state.n = pn  # explicit nonce: the packet number
    return h + bytes(cipher_state.encrypt_with_ad(h, plaintext))


def open_(cipher_state, datagram):
    h, body = datagram[:20], datagram[20:]
    pn = struct.unpack(">Q", h[12:20])[0]
    cipher_state.n = pn
    return bytes(cipher_state.decrypt_with_ad(h, body))


def render(vectors):
    out = []
    for label, b in vectors:
        out.append("%s (%d bytes):" % (label, len(b)))
        for i in range(0, len(b), 32):
            out.append(" ".join("%02x" % x for x in b[i:i + 32]))
    return "\n".join(out)


def vectors():
    i_priv, r_priv = bytes([1] * 32), bytes([2] * 32)
    i_eph, r_eph = bytes([3] * 32), bytes([4] * 32)
    i_cid, r_cid = 0x0102030405060708, 0x03AABBCCDDEEFF11
    n, init = initiation(i_priv, public(r_priv), i_cid, 0, tai64n(1_700_000_000), i_eph)
    # The responder, with noiseprotocol too.
    r = NoiseConnection.from_name(NAME)
    r.set_as_responder()
    r.set_keypair_from_private_bytes(Keypair.STATIC, r_priv)
    r.set_keypair_from_private_bytes(Keypair.EPHEMERAL, r_eph)
    r.set_psks(psk=PSK)
    r.set_prologue(b"ringwire v2" + init[:28])
    r.start_handshake()
    ts = bytes(r.read_message(init[28:136]))
    assert ts == tai64n(1_700_000_000)
    assert init[136:152] == MAC(HASH(b"ringwire v2 mac1", public(r_priv)), init[:136])
    token = MAC(HASH(b"ringwire v2 reset", r_priv), struct.pack(">Q", r_cid))
    resp = header(2, i_cid, 0) + bytes(r.write_message(struct.pack(">Q", r_cid) + token))
    resp += MAC(HASH(b"ringwire v2 mac1", public(i_priv)), resp)
    got_cid, got_token = read_response(n, i_priv, resp, i_cid)
    assert (got_cid, got_token) == (r_cid, token)
    i_send = n.noise_protocol.cipher_state_encrypt
    r_send = r.noise_protocol.cipher_state_encrypt
    k1, k2 = bytes(i_send.k), bytes(r_send.k)
    data = seal(i_send, 4, r_cid, 0, b"hello")
    back = seal(r_send, 4, i_cid, 0, b"hi")
    assert open_(r.noise_protocol.cipher_state_decrypt, data) == b"hello"
    n.rekey_outbound_cipher()
    k1_next = bytes(n.noise_protocol.cipher_state_encrypt.k)
    reset = bytes([0x28, 0, 0, 0]) + struct.pack(">Q", r_cid) + token
    print(render([
        ("initiator static public", public(i_priv)),
        ("responder static public", public(r_priv)),
        ("initiation", init),
        ("response", resp),
        ("k1 (initiator to responder)", k1),
        ("k2 (responder to initiator)", k2),
        ("data from initiator", data),
        ("data from responder", back),
        ("REKEY(k1)", k1_next),
        ("reset", reset),
    ]))


def expect(tag):
    line = sys.stdin.readline().split()
    assert line and line[0] == tag, "expected %s, got %r" % (tag, line)
    return bytes.fromhex(line[1])


def initiate(r_pub_hex, unix_secs):
    i_priv = bytes([5] * 32)
    cid = 0x0A0B0C0D0E0F1011
    n, init = initiation(i_priv, bytes.fromhex(r_pub_hex), cid, 0, tai64n(int(unix_secs)))
    print("initiation", init.hex(), flush=True)
    r_cid, _token = read_response(n, i_priv, expect("response"), cid)
    print("data", seal(n.noise_protocol.cipher_state_encrypt, 4, r_cid, 0,
                       b"hello from python").hex(), flush=True)
    back = expect("data")
    assert back[0] == 0x24 and struct.unpack(">Q", back[4:12])[0] == cid
    print("got", open_(n.noise_protocol.cipher_state_decrypt, back).decode(), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["vectors"]:
        vectors()
    elif sys.argv[1:2] == ["initiate"]:
        initiate(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
