/*
 * Benchmark harness: feeds a raw file of 16-bit little-endian linear 8 kHz samples, in frames
 * of 160 samples, to spandsp's DTMF receiver (dtmf_rx), and prints the time per frame and the
 * digits found. Links against the system libspandsp (Debian: libspandsp-dev); no spandsp code
 * is part of this project.
 *
 *   cc -O2 -o spandsp_dtmf spandsp_dtmf.c -lspandsp
 *   ./spandsp_dtmf input.s16 [repetitions]
 *
 * Output (one line each): "frames=N", "reps=R", "ns_per_frame=X" (the median of the R
 * repetitions, each a fresh receiver over the whole input), "digits=...".
 */
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
/* Only the headers dtmf.h needs: spandsp.h would also pull in libtiff's headers. */
#include <spandsp/telephony.h>
#include <spandsp/logging.h>
#include <spandsp/super_tone_rx.h>
#include <spandsp/dtmf.h>

#define FRAME 160
#define MAX_DIGITS 4096

static char digits[MAX_DIGITS + 1];
static int ndigits;

static void on_digits(void *user_data, const char *d, int len)
{
    (void) user_data;
    for (int i = 0; i < len && ndigits < MAX_DIGITS; i++)
        digits[ndigits++] = d[i];
    digits[ndigits] = '\0';
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return (x > y) - (x < y);
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec * 1e9 + (double) ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s input.s16 [repetitions]\n", argv[0]);
        return 2;
    }
    int reps = argc > 2 ? atoi(argv[2]) : 5;
    if (reps < 1)
        reps = 1;
    FILE *f = fopen(argv[1], "rb");
    if (f == NULL) {
        perror(argv[1]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    size_t n = (size_t) bytes / 2;
    int16_t *samples = malloc(n * sizeof(int16_t) + 1);
    if (samples == NULL || fread(samples, sizeof(int16_t), n, f) != n) {
        fprintf(stderr, "cannot read %s\n", argv[1]);
        return 1;
    }
    fclose(f);
    size_t frames = n / FRAME;

    double *times = malloc(sizeof(double) * (size_t) reps);
    for (int r = 0; r < reps; r++) {
        ndigits = 0;
        digits[0] = '\0';
        dtmf_rx_state_t *rx = dtmf_rx_init(NULL, on_digits, NULL);
        if (rx == NULL) {
            fprintf(stderr, "dtmf_rx_init failed\n");
            return 1;
        }
        double t0 = now_ns();
        for (size_t i = 0; i < frames; i++)
            dtmf_rx(rx, samples + i * FRAME, FRAME);
        double t1 = now_ns();
        times[r] = (t1 - t0) / (double) frames;
        dtmf_rx_free(rx);
    }
    qsort(times, (size_t) reps, sizeof(double), cmp_double);
    printf("frames=%zu\n", frames);
    printf("reps=%d\n", reps);
    printf("ns_per_frame=%.1f\n", times[reps / 2]);
    printf("digits=%s\n", digits);
    free(times);
    free(samples);
    return 0;
}
