/* An embedder's C program, built outside the repository against the installed
 * headers and library only (//packaging:install_test). Sends a message with
 * a descriptor and a pipe endpoint and reads it back. Exit 0 on success. */
#define _POSIX_C_SOURCE 200809L
#include <moat/moat.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define EXPECT(cond)                                                               \
  do {                                                                             \
    if (!(cond)) {                                                                 \
      fprintf(stderr, "embed.c:%d: %s (moat: %s)\n", __LINE__, #cond,              \
              MoatGetLastErrorMessage());                                          \
      return 1;                                                                    \
    }                                                                              \
  } while (0)

#if MOAT_VERSION_MAJOR != 0 || MOAT_VERSION < 100
#error "built against an unexpected moat.h"
#endif

int main(void) {
  MoatHandle a, b, c, d;
  int p[2];
  char buf[16];
  uint32_t n = sizeof(buf), nh = 1, nf = 1;
  MoatHandle got_handle = MOAT_HANDLE_INVALID;
  int got_fd = -1;

  EXPECT(MOAT_MAX_MESSAGE_PAYLOAD_SIZE == 64u * 1024 * 1024);
  EXPECT(MOAT_MAX_MESSAGE_FD_COUNT >= 1 && MOAT_MAX_MESSAGE_HANDLE_COUNT >= 1);
  EXPECT(strcmp(MoatResultToString(MOAT_RESULT_OK), "OK") == 0);
  EXPECT(MoatCreateMessagePipe(NULL, &a, &b) == MOAT_RESULT_OK);
  EXPECT(MoatCreateMessagePipe(NULL, &c, &d) == MOAT_RESULT_OK);
  EXPECT(pipe(p) == 0);
  EXPECT(MoatWriteMessage(a, "hello", 5, &c, 1, &p[1], 1, NULL) == MOAT_RESULT_OK);
  EXPECT(MoatReadMessage(b, NULL, buf, &n, &got_handle, &nh, &got_fd, &nf) == MOAT_RESULT_OK);
  EXPECT(n == 5 && memcmp(buf, "hello", 5) == 0 && nh == 1 && nf == 1);
  /* The descriptor works: write through it, read from our end. */
  EXPECT(write(got_fd, "x", 1) == 1);
  EXPECT(read(p[0], buf, 1) == 1 && buf[0] == 'x');
  /* The pipe endpoint works: its peer d hears it. */
  EXPECT(MoatWriteMessage(got_handle, "ping", 4, NULL, 0, NULL, 0, NULL) == MOAT_RESULT_OK);
  n = sizeof(buf);
  nh = nf = 0;
  EXPECT(MoatReadMessage(d, NULL, buf, &n, NULL, &nh, NULL, &nf) == MOAT_RESULT_OK);
  EXPECT(n == 4 && memcmp(buf, "ping", 4) == 0);
  /* A stale handle is an error with a reason, not a crash. */
  EXPECT(MoatClose(a) == MOAT_RESULT_OK);
  EXPECT(MoatClose(a) == MOAT_RESULT_INVALID_ARGUMENT);
  EXPECT(MoatGetLastErrorMessage()[0] != '\0');
  MoatClose(b);
  MoatClose(got_handle);
  MoatClose(d);
  close(got_fd);
  close(p[0]);
  printf("embed.c: moat %d.%d.%d ok\n", MOAT_VERSION_MAJOR, MOAT_VERSION_MINOR, MOAT_VERSION_PATCH);
  return 0;
}
