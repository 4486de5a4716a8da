/* Nothing to call: CProcessStart only replaces a Swift runtime start-up step (see start.c).
 * The executables depend on it so that its object is linked in. */
#ifndef PODWIRE_CPROCESSSTART_H
#define PODWIRE_CPROCESSSTART_H
#endif
