//! Kernel steering: a classic-BPF `SO_REUSEPORT` program that hands every session datagram to
//! the socket of the shard that owns its session.
//!
//! Every ringwire datagram carries the receiver's connection ID at offset 4 (8 bytes,
//! big-endian), and the top byte of a server-chosen CID is the owning shard's index, so the
//! owner is the single byte at **offset 4** (`docs/PROTOCOL.md` §2, §3). Byte 0 is
//! `version << 4 | type`; a Hello (type 1) is the only message without a CID (its byte 4 is
//! zero), so it is left to the kernel's 4-tuple hash, which spreads new clients over the
//! shards. For a UDP socket the kernel runs the program with the UDP payload at offset 0 and
//! the payload's length as the packet length.
//!
//! ```text
//!  0: ld   len             ; A = datagram length
//!  1: jge  #12, 0, 8       ; shorter than type + CID (12 bytes): use the hash
//!  2: ldb  [0]             ; A = byte 0 (version | type)
//!  3: and  #0x0f           ; A = message type
//!  4: jeq  #1, 8           ; Hello: no CID, use the hash
//!  5: ldb  [4]             ; A = owning shard index
//!  6: jge  #shards, 8      ; not one of ours: use the hash
//!  7: ret  a               ; socket A of the group
//!  8: ret  #0xffffffff     ; out of range: the kernel falls back to its 4-tuple hash
//! ```
//!
//! **What the kernel does with the result** (`net/core/sock_reuseport.c`): `run_bpf_filter`
//! returns no socket when the index is `>= num_socks`, and `reuseport_select_sock` then picks
//! one with `reuseport_select_sock_by_hash`, the same choice as with no program attached. The
//! explicit bound at instruction 4 makes that independent of how many sockets the group holds.
//! The module tests check it on the running kernel: an out-of-range index lands on the very
//! socket the hash picks for that 4-tuple once the program is detached.
//!
//! **Short datagrams.** A classic-BPF load past the end of the packet ends the program with
//! return value 0 (`convert_bpf_ld_abs` in `net/core/filter.c`), which would send every runt
//! to **socket 0**: a flood of short datagrams from many sources would all land on one shard.
//! So the program checks the length first and leaves anything shorter than the 12 bytes that
//! hold the type and the CID to the kernel's hash; no load ever reads past the end. The
//! receiving shard drops such a datagram (`Truncated`).
//!
//! **Why steering survives NAT rebinding.** The kernel's default choice hashes the 4-tuple, so
//! a peer whose NAT mapping changes (new source port or address) would hash to some other
//! shard. The program ignores addresses: the CID the server chose at the handshake names the
//! owner, so every datagram of a session reaches the same shard whatever its source. (The
//! session layer still accepts a session's datagrams only from the address that completed its
//! handshake; steering just guarantees they reach the one shard that can decide.)
//!
//! **Index = bind order, while the group is intact.** Socket *i* of the group is the *i*-th one
//! bound ([`bind_reuseport_group`](super::bind_reuseport_group) binds in shard order). Closing
//! a member moves the group's last socket into its slot (`__reuseport_detach_sock`), and any
//! other process of the same user binding the port with `SO_REUSEPORT` joins the group at the
//! end. So the program is attached once, after all shards' sockets are bound, and the group is
//! torn down as a whole. Attaching to any one member sets the program for the whole group;
//! attaching again replaces it.
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;

/// `SO_ATTACH_REUSEPORT_CBPF` (`include/uapi/asm-generic/socket.h`: 51).
const SO_ATTACH_REUSEPORT_CBPF: libc::c_int = libc::SO_ATTACH_REUSEPORT_CBPF;
/// `SO_DETACH_REUSEPORT_BPF` (`include/uapi/asm-generic/socket.h`: 68, Linux 5.8+).
const SO_DETACH_REUSEPORT_BPF: libc::c_int = libc::SO_DETACH_REUSEPORT_BPF;

/// The shortest datagram the program reads: byte 0 (type) and the 8-byte CID at offset 4.
const MIN_STEERED_LEN: u32 = 12;
/// Offset of the message type (low nibble) in every datagram.
const TYPE_OFFSET: u32 = 0;
/// Offset of the byte that names the owning shard: the top byte of the 8-byte CID.
const SHARD_OFFSET: u32 = 4;
/// Mask that keeps the message type of byte 0.
const TYPE_MASK: u32 = 0x0f;
/// The Hello message type: the only one without a CID.
const TYPE_HELLO: u32 = 1;
/// A return value no group can have as an index: the kernel falls back to its hash.
const USE_HASH: u32 = u32::MAX;

/// One statement: `BPF_STMT` from `linux/filter.h`.
pub(super) const fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

/// One conditional jump: `BPF_JUMP` from `linux/filter.h`. `jt` and `jf` count instructions
/// after the next one.
pub(super) const fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// The steering program for a group of `shards` sockets (`docs/PROTOCOL.md` §2):
///
/// ```text
///  0: ld   len             ; A = datagram length
///  1: jge  #12, 0, 8       ; shorter than type + CID (12 bytes): use the hash
///  2: ldb  [0]             ; A = byte 0 (version | type)
///  3: and  #0x0f           ; A = message type
///  4: jeq  #1, 8           ; Hello: no CID, use the hash
///  5: ldb  [4]             ; A = owning shard index
///  6: jge  #shards, 8      ; not one of ours: use the hash
///  7: ret  a               ; socket A of the group
///  8: ret  #0xffffffff     ; out of range: the kernel falls back to its 4-tuple hash
/// ```
///
/// Every Hello, every datagram shorter than 12 bytes and every datagram whose byte 4 is
/// `shards` or more is left to the kernel's 4-tuple hash.
pub fn steering_program(shards: u16) -> Vec<libc::sock_filter> {
    use libc::{
        BPF_A, BPF_ABS, BPF_ALU, BPF_AND, BPF_B, BPF_JEQ, BPF_JGE, BPF_JMP, BPF_K, BPF_LD, BPF_LEN,
        BPF_RET, BPF_W,
    };
    vec![
        /* 0 */ stmt(BPF_LD | BPF_W | BPF_LEN, 0),
        /* 1 */ jump(BPF_JMP | BPF_JGE | BPF_K, MIN_STEERED_LEN, 0, 6),
        /* 2 */ stmt(BPF_LD | BPF_B | BPF_ABS, TYPE_OFFSET),
        /* 3 */ stmt(BPF_ALU | BPF_AND | BPF_K, TYPE_MASK),
        /* 4 */ jump(BPF_JMP | BPF_JEQ | BPF_K, TYPE_HELLO, 3, 0),
        /* 5 */ stmt(BPF_LD | BPF_B | BPF_ABS, SHARD_OFFSET),
        /* 6 */ jump(BPF_JMP | BPF_JGE | BPF_K, u32::from(shards), 1, 0),
        /* 7 */ stmt(BPF_RET | BPF_A, 0),
        /* 8 */ stmt(BPF_RET | BPF_K, USE_HASH),
    ]
}

/// Attaches [`steering_program`] to the `SO_REUSEPORT` group `socket` belongs to, so the
/// kernel hands each datagram to the socket of the shard named at offset 4. One call covers
/// the whole group; attach after every shard's socket is bound. Fails with `EINVAL` if the
/// socket has no reuseport group, `EPERM`/`ENOPROTOOPT` where the kernel or a sandbox forbids
/// it.
pub fn attach_steering(socket: &UdpSocket, shards: u16) -> io::Result<()> {
    attach_program(socket, steering_program(shards))
}

/// Attaches a classic-BPF reuseport program to `socket`'s group (replacing any other).
pub(super) fn attach_program(
    socket: &UdpSocket,
    mut program: Vec<libc::sock_filter>,
) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        // The programs have a few dozen instructions at most: always fits.
        len: program.len() as libc::c_ushort,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: `fprog` points at `program`, which outlives the call, with its exact length; the
    // kernel copies the instructions before returning and never writes through the pointer.
    // The option length is the size of the `sock_fprog` passed.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_ATTACH_REUSEPORT_CBPF,
            (&raw const fprog).cast(),
            mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Removes the steering program from `socket`'s group: the kernel goes back to its 4-tuple
/// hash. Fails with `ENOENT` ([`io::ErrorKind::NotFound`]) when no program is attached.
pub fn detach_steering(socket: &UdpSocket) -> io::Result<()> {
    // The kernel reads an int for every SOL_SOCKET option, even one that ignores it.
    let unused: libc::c_int = 0;
    // SAFETY: the value points at a live c_int and the length is its size; the kernel only
    // reads it.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_DETACH_REUSEPORT_BPF,
            (&raw const unused).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::collections::BTreeSet;
    use std::net::SocketAddr;
    use std::thread;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::driver::{SocketOptions, bind_reuseport_group};

    pub(in crate::driver) const SHARDS: u16 = 4;
    const DATA: u8 = 0x14;
    const HELLO: u8 = 0x11;

    /// A classic-BPF interpreter for the instructions the steering programs use (this one and
    /// QUIC's), with one difference from the kernel: a load past the end fails the test (the
    /// kernel would return 0 and put the datagram on socket 0).
    pub(in crate::driver) fn run(program: &[libc::sock_filter], packet: &[u8]) -> u32 {
        use libc::{
            BPF_A, BPF_ABS, BPF_ALU, BPF_AND, BPF_B, BPF_JEQ, BPF_JGE, BPF_JMP, BPF_JSET, BPF_K,
            BPF_LD, BPF_LEN, BPF_RET, BPF_W,
        };
        let past_end =
            |packet: &[u8]| -> ! { panic!("the program read past the end of {packet:02x?}") };
        let mut a: u32 = 0;
        let mut pc = 0;
        loop {
            let insn = program[pc];
            let code = u32::from(insn.code);
            pc += 1;
            let k = insn.k as usize;
            if code == BPF_LD | BPF_W | BPF_LEN {
                a = packet.len() as u32;
            } else if code == BPF_LD | BPF_B | BPF_ABS {
                a = u32::from(*packet.get(k).unwrap_or_else(|| past_end(packet)));
            } else if code == BPF_LD | BPF_W | BPF_ABS {
                let w = packet.get(k..k + 4).unwrap_or_else(|| past_end(packet));
                a = u32::from_be_bytes([w[0], w[1], w[2], w[3]]);
            } else if code == BPF_ALU | BPF_AND | BPF_K {
                a &= insn.k;
            } else if code & 0x07 == BPF_JMP {
                let taken = match code & 0xf0 {
                    BPF_JEQ => a == insn.k,
                    BPF_JGE => a >= insn.k,
                    BPF_JSET => a & insn.k != 0,
                    _ => panic!("unexpected jump {insn:?}"),
                };
                assert_eq!(code & 0x08, BPF_K);
                pc += usize::from(if taken { insn.jt } else { insn.jf });
            } else if code == BPF_RET | BPF_A {
                return a;
            } else if code == BPF_RET | BPF_K {
                return insn.k;
            } else {
                panic!("unexpected instruction {insn:?}");
            }
        }
    }

    #[test]
    fn program_encoding_matches_tcpdump() {
        // What `tcpdump -dd` prints for the same listing with N = 4.
        let expected: [(u16, u8, u8, u32); 9] = [
            (0x80, 0, 0, 0x0000_0000),
            (0x35, 0, 6, 0x0000_000c),
            (0x30, 0, 0, 0x0000_0000),
            (0x54, 0, 0, 0x0000_000f),
            (0x15, 3, 0, 0x0000_0001),
            (0x30, 0, 0, 0x0000_0004),
            (0x35, 1, 0, 0x0000_0004),
            (0x16, 0, 0, 0x0000_0000),
            (0x06, 0, 0, 0xffff_ffff),
        ];
        let got: Vec<(u16, u8, u8, u32)> = steering_program(4)
            .iter()
            .map(|i| (i.code, i.jt, i.jf, i.k))
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn program_semantics() {
        let p = steering_program(SHARDS);
        let mut dgram = [0u8; 20];
        for ty in 0..16u8 {
            for owner in [0u8, 1, 3, 4, 200, 255] {
                dgram[0] = 0x10 | ty;
                dgram[4] = owner;
                let want = if ty == 1 || u16::from(owner) >= SHARDS {
                    USE_HASH
                } else {
                    u32::from(owner)
                };
                assert_eq!(run(&p, &dgram), want, "type {ty} owner {owner}");
            }
        }
        // Shorter than 12 bytes: hashed whatever the bytes say, and never read (`run` fails on
        // a load past the end).
        for len in 0..12 {
            for byte0 in [DATA, HELLO, 0x00, 0xff] {
                let d = [byte0, 9, 9, 9, 1, 0, 0, 0, 0, 0, 0, 0];
                assert_eq!(run(&p, &d[..len]), USE_HASH, "len {len}, byte 0 {byte0:#x}");
            }
        }
        // From 12 bytes on, byte 4 decides.
        let d = [DATA, 9, 9, 9, 1, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(run(&p, &d), 1);
        // One shard: everything not for shard 0 hashes. 256 shards: every byte is in range.
        dgram[0] = DATA;
        dgram[4] = 1;
        assert_eq!(run(&steering_program(1), &dgram), USE_HASH);
        dgram[4] = 255;
        assert_eq!(run(&steering_program(256), &dgram), 255);
    }

    /// The session simulator's steering model (`session::sim::steer`) must agree with the
    /// program: same socket where the program picks one, the stand-in hash where it defers.
    #[test]
    fn sim_model_matches_the_program() {
        use crate::session::{connect_shard, sim};
        let from: SocketAddr = "192.0.2.7:4433".parse().unwrap();
        for n in [1u16, 3, 4, 8, 255, 256] {
            let p = steering_program(n);
            let check = |bytes: &[u8]| {
                let want = match run(&p, bytes) {
                    USE_HASH => connect_shard(from, n),
                    k => u16::try_from(k).unwrap(),
                };
                assert_eq!(sim::steer(bytes, from, n), want, "n {n}, {bytes:02x?}");
            };
            for len in 0..=20 {
                for byte0 in [0x00u8, 0x11, 0x14, 0x17, 0x21, 0xf1, 0xff] {
                    for owner in [0u8, 1, 2, 3, 4, 7, 8, 254, 255] {
                        let mut d = [0u8; 20];
                        d[0] = byte0;
                        d[4] = owner;
                        check(&d[..len]);
                    }
                }
            }
        }
    }

    /// A datagram of type `byte0` for shard `owner`, tagged in its packet-number field.
    fn datagram(byte0: u8, owner: u8, tag: u64) -> [u8; 20] {
        let mut d = [0u8; 20];
        d[0] = byte0;
        d[4] = owner;
        d[12..20].copy_from_slice(&tag.to_be_bytes());
        d
    }

    /// A group of `SHARDS` sockets on loopback with a program `attach`ed, or `None` (after
    /// printing why) where the kernel refuses the program.
    pub(in crate::driver) fn group(
        attach: impl FnOnce(&UdpSocket, u16) -> io::Result<()>,
    ) -> Option<(Vec<UdpSocket>, SocketAddr)> {
        let opts = SocketOptions {
            recv_buffer: 0,
            send_buffer: 0,
            mtu_probe: false,
        };
        let group =
            bind_reuseport_group("127.0.0.1:0".parse().unwrap(), SHARDS.into(), opts).unwrap();
        let addr = group[0].local_addr().unwrap();
        if let Err(e) = attach(&group[0], SHARDS) {
            match e.raw_os_error() {
                Some(libc::EPERM | libc::EINVAL | libc::ENOPROTOOPT) => {
                    crate::driver::skip_or_fail(format_args!(
                        "the kernel refused SO_ATTACH_REUSEPORT_CBPF: {e}"
                    ));
                    return None;
                }
                _ => panic!("SO_ATTACH_REUSEPORT_CBPF: {e}"),
            }
        }
        Some((group, addr))
    }

    pub(in crate::driver) fn client() -> UdpSocket {
        UdpSocket::bind("127.0.0.1:0").unwrap()
    }

    /// Sends `payload` from `from` and returns the index of the group socket it arrived on.
    /// The sockets stay non-blocking and are polled, so a datagram on socket 3 costs no
    /// timeouts on sockets 0–2; datagrams from earlier sends are skipped by content.
    pub(in crate::driver) fn land(
        group: &[UdpSocket],
        addr: SocketAddr,
        from: &UdpSocket,
        payload: &[u8],
    ) -> usize {
        from.send_to(payload, addr).unwrap();
        // A liveness guard only: one datagram in flight cannot overflow a socket buffer.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut buf = [0u8; 128];
        loop {
            for (i, s) in group.iter().enumerate() {
                loop {
                    match s.recv_from(&mut buf) {
                        Ok((n, peer))
                            if &buf[..n] == payload && peer == from.local_addr().unwrap() =>
                        {
                            return i;
                        }
                        Ok(_) => continue,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => panic!("recv on socket {i}: {e}"),
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "datagram {payload:02x?} was lost"
            );
            thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn data_lands_on_the_shard_in_byte_4() {
        let Some((group, addr)) = group(attach_steering) else {
            return;
        };
        // One 4-tuple: the hash alone would always pick the same socket.
        let from = client();
        for round in 0..3u64 {
            for k in 0..SHARDS as u8 {
                let d = datagram(DATA, k, round * 16 + u64::from(k));
                assert_eq!(
                    land(&group, addr, &from, &d),
                    usize::from(k),
                    "shard byte {k}"
                );
            }
        }
        // Every non-Hello type is steered, not only Data.
        for (i, ty) in [0x12u8, 0x13, 0x15, 0x16, 0x17].into_iter().enumerate() {
            let k = (i % usize::from(SHARDS)) as u8;
            let d = datagram(ty, k, 100 + i as u64);
            assert_eq!(
                land(&group, addr, &from, &d),
                usize::from(k),
                "type {ty:#x}"
            );
        }
    }

    /// The set of sockets datagrams built by `make` reach from `ports` different client ports.
    fn spread(
        group: &[UdpSocket],
        addr: SocketAddr,
        ports: usize,
        make: impl Fn(u64) -> Vec<u8>,
    ) -> BTreeSet<usize> {
        (0..ports)
            .map(|i| land(group, addr, &client(), &make(i as u64)))
            .collect()
    }

    #[test]
    fn hellos_spread_by_hash() {
        let Some((group, addr)) = group(attach_steering) else {
            return;
        };
        // Byte 4 of a Hello is zero: without the type check they would all land on socket 0.
        let hit = spread(&group, addr, 32, |i| datagram(HELLO, 0, i).to_vec());
        assert!(hit.len() > 1, "32 client ports all hashed to {hit:?}");
    }

    #[test]
    fn out_of_range_shard_falls_back_to_the_hash() {
        let Some((group, addr)) = group(attach_steering) else {
            return;
        };
        for owner in [SHARDS as u8, 200, 255] {
            let hit = spread(&group, addr, 32, |i| datagram(DATA, owner, i).to_vec());
            assert!(
                hit.len() > 1,
                "byte 4 = {owner}: 32 ports all landed on {hit:?}"
            );
        }
        // From one 4-tuple, out-of-range and Hello land where the plain hash sends that
        // 4-tuple once the program is gone.
        let from = client();
        let hello = land(&group, addr, &from, &datagram(HELLO, 0, 1));
        for (i, owner) in [4u8, 5, 200, 255].into_iter().enumerate() {
            let got = land(&group, addr, &from, &datagram(DATA, owner, 2 + i as u64));
            assert_eq!(got, hello, "byte 4 = {owner}");
        }
        detach_steering(&group[0]).unwrap();
        assert_eq!(land(&group, addr, &from, &datagram(DATA, 1, 10)), hello);
    }

    #[test]
    fn short_datagrams_are_hashed_not_sent_to_socket_0() {
        let Some((group, addr)) = group(attach_steering) else {
            return;
        };
        // From many ports, so that the hash spreads them; a program that read past the end
        // would return 0 and put every one on socket 0.
        for len in [0usize, 1, 4, 5, 11] {
            let d = [DATA, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0];
            let hit = spread(&group, addr, 32, |_| d[..len].to_vec());
            assert!(hit.len() > 1, "{len}-byte datagrams all landed on {hit:?}");
        }
        // The same from one 4-tuple lands where the plain hash sends it; 12 bytes are steered.
        let from = client();
        let hello = land(&group, addr, &from, &datagram(HELLO, 0, 1));
        let runt = [DATA, 2, 2, 2, 2, 0, 0, 0, 0, 0, 7];
        assert_eq!(land(&group, addr, &from, &runt), hello);
        let twelve = [DATA, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 8];
        assert_eq!(land(&group, addr, &from, &twelve), 2);
    }

    #[test]
    fn detach_restores_the_hash() {
        let Some((group, addr)) = group(attach_steering) else {
            return;
        };
        // Attaching through another member replaces the group's program.
        attach_steering(&group[2], SHARDS).unwrap();
        detach_steering(&group[1]).unwrap();
        let from = client();
        let first = land(&group, addr, &from, &datagram(DATA, 0, 0));
        for k in 1..SHARDS as u8 {
            let got = land(&group, addr, &from, &datagram(DATA, k, u64::from(k)));
            assert_eq!(got, first, "shard byte {k} after detach");
        }
        let err = detach_steering(&group[0]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "second detach: {err}");
    }

    #[test]
    fn attach_needs_a_reuseport_socket() {
        let plain = client();
        let err = attach_steering(&plain, SHARDS).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
    }
}
