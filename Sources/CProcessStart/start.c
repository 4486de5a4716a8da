/* Keeps the Swift runtime's argv finder out of the static executables.
 *
 * Linked statically, libswiftCore's CommandLine.cpp runs a constructor in every process that
 * opens /proc/self/maps and sscanf's each line to find the initial stack, then walks back from
 * environ to argv. On this machine that is ~35 us of every exec (three syscalls, the kernel
 * printing the maps, stdio and the scanf code faulted in), for arguments a CNI plugin never
 * reads. glibc hands argc and argv to every .init_array function, so they are captured here
 * for free, and this file defines the one function Swift's CommandLine asks them from. With it
 * defined, the linker never pulls CommandLine.cpp's object (and its constructor) out of
 * libswiftCore.a.
 *
 * The function is the runtime's internal entry (swiftcall; one pointer in, one pointer out),
 * so CommandLine.arguments still tells the truth. In a build linked against libswiftCore.so
 * the runtime keeps its own copy (the symbol is not exported) and this one goes unused. */

#include "CProcessStart.h"

static char **capturedArguments;
static int capturedArgumentCount;

__attribute__((constructor))
static void CProcessStart_captureArguments(int argc, char **argv, char **envp) {
    (void)envp;
    capturedArgumentCount = argc;
    capturedArguments = argv;
}

__attribute__((swiftcall, visibility("hidden")))
char **_swift_stdlib_getUnsafeArgvArgc(int *outArgLen) {
    *outArgLen = capturedArgumentCount;
    return capturedArguments;
}
