/*
 * A plain main() for fuzz targets: feeds every file in the directories given
 * on the command line to LLVMFuzzerTestOneInput, plus a few built-in seeds.
 * This is how regression inputs are replayed without libFuzzer.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return 0;
  static uint8_t buf[1 << 16];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  LLVMFuzzerTestOneInput(buf, n);
  return 1;
}

int main(int argc, char **argv) {
  /* Seeds: every operation on every slot, in a few orders. */
  uint8_t seed[512];
  for (unsigned round = 0; round < 64; round++) {
    for (size_t i = 0; i < sizeof seed; i++)
      seed[i] = (uint8_t)(i * 2654435761u >> (round % 24)) ^ (uint8_t)round;
    LLVMFuzzerTestOneInput(seed, sizeof seed);
  }
  int files = 0;
  for (int a = 1; a < argc; a++) {
    DIR *d = opendir(argv[a]);
    if (d == NULL) continue;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      if (e->d_name[0] == '.') continue;
      char path[4096];
      snprintf(path, sizeof path, "%s/%s", argv[a], e->d_name);
      files += replay_file(path);
    }
    closedir(d);
  }
  printf("replayed 64 seeds and %d kept inputs\n", files);
  return 0;
}
