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
 * This wrapper keeps, for each traced host process, the whole area of its last GETREGSET,
 * hands UML the first part it asked for, and on SETREGSET writes UML's part over that copy
 * and gives the host the whole area. What UML keeps per guest thread (x87, SSE, AVX) is
 * restored exactly; the state beyond it (AVX-512's upper registers, protection keys, AMX)
 * stays what the host process last had. Where the host's area is no larger than UML's
 * buffer, every call passes through unchanged.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/uio.h>

#define AREA_MAX 65536 /* far above any XSAVE area so far (AMX: about 11 KiB) */
#define SLOTS 32768    /* host processes tracked at once (pid hash, linear probing) */

struct slot {
    pid_t pid;
    size_t len;          /* bytes of the whole area the host gave; 0: none read yet */
    unsigned char *area; /* AREA_MAX bytes */
};

static struct slot slots[SLOTS];
static long (*real_ptrace)(int, pid_t, void *, void *);

static struct slot *slot_of(pid_t pid)
{
    for (unsigned i = 0; i < SLOTS; i++) {
        struct slot *s = &slots[((unsigned)pid + i) % SLOTS];
        if (s->pid == pid)
            return s;
        if (s->pid == 0) {
            s->area = malloc(AREA_MAX);
            if (!s->area)
                return NULL;
            s->pid = pid;
            return s;
        }
    }
    return NULL;
}

/* Read the whole area of PID into its slot. */
static long read_area(pid_t pid, struct slot *s)
{
    struct iovec iov = {s->area, AREA_MAX};
    long r = real_ptrace(PTRACE_GETREGSET, pid, (void *)NT_X86_XSTATE, &iov);
    if (r >= 0)
        s->len = iov.iov_len;
    return r;
}

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

    struct slot *s;
    if ((request != PTRACE_GETREGSET && request != PTRACE_SETREGSET) || (long)addr != NT_X86_XSTATE ||
        !(s = slot_of(pid)))
        return real_ptrace(request, pid, addr, data);

    struct iovec *iov = data;
    if (request == PTRACE_GETREGSET) {
        long r = read_area(pid, s);
        if (r < 0)
            return r;
        if (iov->iov_len > s->len)
            iov->iov_len = s->len;
        memcpy(iov->iov_base, s->area, iov->iov_len);
        return r;
    }
    if (s->len == 0) {
        long r = read_area(pid, s);
        if (r < 0)
            return r;
    }
    if (iov->iov_len >= s->len)
        return real_ptrace(request, pid, addr, data);
    memcpy(s->area, iov->iov_base, iov->iov_len);
    struct iovec whole = {s->area, s->len};
    return real_ptrace(request, pid, addr, &whole);
}
