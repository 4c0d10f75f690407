/*
 * bcryptprimitives.c: test scaffolding for scripts/test-windows only, never shipped.
 * Rust's standard library on Windows (1.78 and later) takes its random numbers from
 * ProcessPrng in bcryptprimitives.dll, which Windows 10 and later have and wine 8.0
 * (Debian 12's) lacks. This stand-in, placed beside the test programs, answers from
 * RtlGenRandom (advapi32's SystemFunction036), which wine has.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
