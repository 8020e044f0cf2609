/*
 * uml-xstate.so: lets Debian 12's User-Mode Linux (6.1) run on hosts whose CPU state is
 * larger than it knows, preloaded into linux.uml by scripts/lab (LD_PRELOAD).
 *
 * UML 6.1 saves and restores its processes' FPU/vector state with ptrace(PTRACE_GETREGSET /
 * PTRACE_SETREGSET, NT_X86_XSTATE) in a buffer of 832 bytes (x87, SSE, AVX). On a host with
 * more state (AVX-512, protection keys, AMX) the host kernel accepts a SETREGSET only with
 * the whole XSAVE area, and refuses the 832 bytes with EFAULT: the guest's init is killed
 * at once ("ptrace set fp regs failed, errno = 14"). Linux fixed UML later (the FP buffer
 * is sized from the host); Debian 12 ships 6.1.
 *
 * This wrapper passes every call through, but a SETREGSET of less than the host's whole area:
 * that one it completes with the traced process's own current state (read with GETREGSET just
 * before) beyond UML's part. What UML keeps per guest thread (x87, SSE, AVX) is restored
 * exactly; the state beyond it (AVX-512's upper registers, protection keys, AMX) stays what
 * the host process has. It keeps no state between calls. Where the host's area is no larger
 * than UML's buffer, nothing is changed.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/uio.h>

#define AREA_MAX 65536 /* far above any XSAVE area so far (AMX: about 11 KiB) */

static long (*real_ptrace)(int, pid_t, void *, void *);
static __thread unsigned char area[AREA_MAX];

long ptrace(enum __ptrace_request request, ...)
{
    va_list ap;
    va_start(ap, request);
    pid_t pid = va_arg(ap, pid_t);
    void *addr = va_arg(ap, void *);
    void *data = va_arg(ap, void *);
    va_end(ap);
    if (!real_ptrace)
        real_ptrace = (long (*)(int, pid_t, void *, void *))dlsym(RTLD_NEXT, "ptrace");
    if (request != PTRACE_SETREGSET || (long)addr != NT_X86_XSTATE)
        return real_ptrace(request, pid, addr, data);

    /* The process's whole area as it is now; the host says how large it is. */
    struct iovec *iov = data, whole = {area, sizeof(area)};
    long r = real_ptrace(PTRACE_GETREGSET, pid, (void *)NT_X86_XSTATE, &whole);
    if (r < 0 || iov->iov_len >= whole.iov_len)
        return real_ptrace(request, pid, addr, data);
    memcpy(area, iov->iov_base, iov->iov_len);
    return real_ptrace(request, pid, addr, &whole);
}
