/* A do-nothing plugin: what exec'ing a static binary costs, the other half of the floor. */
#include <unistd.h>
int main(void) {
    char buffer[4096];
    while (read(0, buffer, sizeof buffer) > 0) {}
    return 0;
}
