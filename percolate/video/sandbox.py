"""Leave the decode child nothing to steal: no environment, no inherited descriptors, no
network, no file but its input.

`confine(input_path, keep_fd)` runs in the forked child (`percolate.video.isolation`) before
it reads a byte of the video:

* the environment is emptied (`os.environ` and the process's original environment block,
  which `/proc/self/environ` shows, overwritten with zeros);
* every file descriptor but stdin/stdout/stderr and the result pipe is closed (the Spark
  worker's sockets to its JVM, the object store's connections, open files);
* **Landlock** (Linux >= 5.13; ABI 4+ for TCP): no file or directory may be opened except
  the input, for reading (so no credentials file, no `/proc/<parent>/environ`), no TCP bind
  or connect, and (ABI 6+) no signal to or abstract socket of a process outside the child;
* a **seccomp** filter: `socket`, `socketpair`, `ptrace`, `process_vm_readv/writev` and
  foreign-ABI system calls fail with EPERM (x86_64 and aarch64; elsewhere skipped).

What remains (see docs/operations.md#reliability): the child is a fork of the Spark worker,
so memory the worker held at the fork (a store client's in-memory credentials, say) is in
its address space; a decode server exec'd with an empty environment before anything is
loaded would close that, at a fork-server's complexity.

`support()` says what this machine allows. A confinement that cannot be applied where the
kernel offers it raises `OSError`: the child reports it and the parent fails the task
(`DecoderUnavailable`), rather than decoding unconfined.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct

__all__ = ["confine", "support"]

_NR = {  # landlock_create_ruleset, landlock_add_rule, landlock_restrict_self, seccomp's denials
    "x86_64": dict(create=444, add=445, restrict=446, deny=(41, 53, 101, 310, 311), arch=0xC000003E,
                   foreign=0x40000000),
    "aarch64": dict(create=444, add=445, restrict=446, deny=(198, 199, 117, 270, 271), arch=0xC00000B7,
                    foreign=None),
}
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_EPERM = 1
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1
_READ_FILE = 1 << 2
# handled filesystem rights by ABI: v1 bits 0-12, v2 REFER (13), v3 TRUNCATE (14), v5 IOCTL_DEV (15)
_FS_BITS = {1: 13, 2: 14, 3: 15, 4: 15, 5: 16}
_NET_TCP = 0b11  # BIND_TCP | CONNECT_TCP (ABI 4)
_SCOPED = 0b11  # ABSTRACT_UNIX_SOCKET | SIGNAL (ABI 6)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_ARCH = _NR.get(platform.machine())


def _syscall(*args) -> int:
    res = _libc.syscall(*args)
    if res < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return res


def landlock_abi() -> int:
    """Landlock's ABI version on this kernel; 0 when it has none."""
    if _ARCH is None:
        return 0
    try:
        return _syscall(_ARCH["create"], None, ctypes.c_size_t(0), ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION))
    except OSError:
        return 0


def support() -> dict:
    """What confinement this machine gives the decode child."""
    abi = landlock_abi()
    return {"arch": platform.machine(), "landlock_abi": abi, "files": abi >= 1, "tcp": abi >= 4,
            "signals_and_abstract_sockets": abi >= 6, "seccomp": _ARCH is not None,
            "environment": True, "file_descriptors": True}


def confine(input_path: str, keep_fd: int) -> None:
    """Apply every confinement this machine allows to the calling (child) process."""
    _clear_environment()
    os.closerange(3, keep_fd)
    os.closerange(keep_fd + 1, 1 << 20)
    _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
    abi = landlock_abi()
    if abi:
        _landlock(abi, input_path)
    if _ARCH is not None:
        _seccomp()


def _check(res: int) -> None:
    if res != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _clear_environment() -> None:
    os.environ.clear()  # unsetenv: the C library's environ
    try:  # the block the kernel shows as /proc/self/environ stays in memory: zero it
        with open("/proc/self/stat", "rb") as fh:
            stat = fh.read().rsplit(b")", 1)[1].split()
        start, end = int(stat[47]), int(stat[48])  # fields 50 and 51: env_start, env_end
    except (OSError, IndexError, ValueError):
        return
    if 0 < start < end and end - start < (1 << 24):
        ctypes.memset(start, 0, end - start)


def _landlock(abi: int, input_path: str) -> None:
    fs = (1 << _FS_BITS.get(abi, 16)) - 1
    net = _NET_TCP if abi >= 4 else 0
    scoped = _SCOPED if abi >= 6 else 0
    if abi >= 6:
        attr = struct.pack("=QQQ", fs, net, scoped)
    elif abi >= 4:
        attr = struct.pack("=QQ", fs, net)
    else:
        attr = struct.pack("=Q", fs)
    buf = ctypes.create_string_buffer(attr, len(attr))
    ruleset = _syscall(_ARCH["create"], buf, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    try:
        target = os.open(input_path, os.O_PATH | os.O_CLOEXEC)
        try:
            rule = ctypes.create_string_buffer(struct.pack("=Qi", _READ_FILE, target), 12)
            _syscall(_ARCH["add"], ctypes.c_int(ruleset), ctypes.c_int(_LANDLOCK_RULE_PATH_BENEATH), rule,
                     ctypes.c_uint32(0))
        finally:
            os.close(target)
        _syscall(_ARCH["restrict"], ctypes.c_int(ruleset), ctypes.c_uint32(0))
    finally:
        os.close(ruleset)


def _seccomp() -> None:
    ld_w, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, BPF_JMP|JGE|K, BPF_RET|K
    allow, deny = 0x7FFF0000, 0x00050000 | _EPERM  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | EPERM
    denied = _ARCH["deny"]
    prog = [(ld_w, 0, 0, 4)]  # seccomp_data.arch
    checks = len(denied) + (1 if _ARCH["foreign"] else 0)
    prog.append((jeq, 1, 0, _ARCH["arch"]))  # our ABI: go on; any other: deny
    prog.append((ret, 0, 0, deny))
    prog.append((ld_w, 0, 0, 0))  # seccomp_data.nr
    for i, nr in enumerate(denied):
        prog.append((jeq, checks - i, 0, nr))  # -> the deny at the end
    if _ARCH["foreign"]:
        prog.append((jge, 1, 0, _ARCH["foreign"]))  # x32 system calls
    prog.append((ret, 0, 0, allow))
    prog.append((ret, 0, 0, deny))
    raw = b"".join(struct.pack("=HBBI", *ins) for ins in prog)
    filt = ctypes.create_string_buffer(raw, len(raw))
    fprog = struct.pack("@HP", len(prog), ctypes.addressof(filt))  # struct sock_fprog, native alignment
    fbuf = ctypes.create_string_buffer(fprog, len(fprog))
    _check(_libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, fbuf, 0, 0))
