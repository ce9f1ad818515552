/*
 * Test-only stand-in for Windows' bcryptprimitives.dll, for Wine 8 prefixes.
 *
 * Rust's standard library (1.78 and later) takes its random numbers from ProcessPrng in
 * bcryptprimitives.dll, which every Windows 10/11 has and Debian's Wine 8 lacks: there the
 * cross-built alarm-tray.exe fails to load ("Library bcryptprimitives.dll not found",
 * exit code 53). The Wine tests (tests/integration/windows.rs) build this file with
 * x86_64-w64-mingw32-gcc and copy the DLL into their own throwaway WINEPREFIX only; it is
 * never shipped.
 *
 * ProcessPrng fills the buffer from RtlGenRandom (advapi32's SystemFunction036), the
 * system CSPRNG that Wine implements. Like the real one it cannot fail: it returns TRUE.
 */
#include <windows.h>

/* RtlGenRandom; takes at most a ULONG per call. */
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}

BOOL WINAPI DllMain(HINSTANCE instance, DWORD reason, LPVOID reserved)
{
    (void)instance;
    (void)reason;
    (void)reserved;
    return TRUE;
}
