/*
 * syscall_cost: what one trip into the kernel and back costs on this
 * machine. tools/bench prints it beside the machine: a server's requests
 * each make about two system calls (a read and a write), and on a virtual
 * machine whose hypervisor takes part in every kernel entry a trip costs
 * many times what it costs on bare metal, so that the calls alone, the
 * same for every runtime, are a good part of a request's CPU time.
 *
 * The call is getppid through syscall(2): it does no work in the kernel
 * and nothing caches it. The best of five rounds, as the least disturbed.
 *
 *   bazel run -c opt //bench:syscall_cost -- [CALLS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
  long calls = argc > 1 ? strtol(argv[1], NULL, 10) : 200000;
  if (calls <= 0) {
    fprintf(stderr, "usage: syscall_cost [CALLS > 0]\n");
    return 2;
  }
  double best = 0;
  for (int round = 0; round < 5; round++) {
    double t0 = now_ns();
    for (long i = 0; i < calls; i++) syscall(SYS_getppid);
    double ns = (now_ns() - t0) / (double)calls;
    if (round == 0 || ns < best) best = ns;
  }
  printf("syscall_ns=%.0f calls=%ld\n", best, calls);
  return 0;
}
