#!/usr/bin/env python3
"""Runs a command with io_uring blocked the way Docker's default seccomp profile blocks it:
io_uring_setup fails with EPERM. Checks the probe-or-skip rule (docs/TESTING.md):

    scripts/no-io-uring.py cargo test --workspace --all-targets
        every test that needs io_uring prints `skipping: ...` and passes
    RINGWIRE_REQUIRE_IO_URING=1 scripts/no-io-uring.py cargo test --workspace --all-targets
        every one of them fails with that reason
    scripts/no-io-uring.py --errno ENOMEM target/release/ringwire serve
        io_uring_setup fails with another error (a name from the errno module) instead

(engine/tests/cli.rs runs the binary under it: the error it prints and its exit status.)

Affects only the command and its children. io_uring_setup is system call 425 on every Linux
architecture (the common table)."""
import ctypes
import os
import struct
import sys

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SYS_IO_URING_SETUP = 425
EPERM = 1
# classic BPF: load the syscall number; io_uring_setup -> ERRNO(EPERM); anything else -> ALLOW
LD_W_ABS, JEQ_K, RET_K = 0x20, 0x15, 0x06
RET_ERRNO, RET_ALLOW = 0x00050000, 0x7FFF0000


def insn(code, jt, jf, k):
    return struct.pack("HBBI", code, jt, jf, k)


def main():
    errno_value = EPERM
    args = sys.argv[1:]
    if len(args) >= 2 and args[0] == "--errno":
        import errno
        errno_value = getattr(errno, args[1], None)
        if errno_value is None:
            sys.exit("unknown errno name %s" % args[1])
        args = args[2:]
    if not args:
        sys.exit(__doc__)
    program = b"".join([
        insn(LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
        insn(JEQ_K, 0, 1, SYS_IO_URING_SETUP),
        insn(RET_K, 0, 0, RET_ERRNO | errno_value),
        insn(RET_K, 0, 0, RET_ALLOW),
    ])
    buf = ctypes.create_string_buffer(program)

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        sys.exit("prctl(PR_SET_NO_NEW_PRIVS): %s" % os.strerror(ctypes.get_errno()))
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        sys.exit("prctl(PR_SET_SECCOMP): %s" % os.strerror(ctypes.get_errno()))
    os.execvp(args[0], args)


if __name__ == "__main__":
    main()
