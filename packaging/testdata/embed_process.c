/* An embedder's multi-process C program, built outside the repository against
 * the installed headers and library only (//packaging:install_test): the
 * broker launches itself as a child, passes it a message with a pipe and a
 * descriptor, and reports the child's next message as bad, which cuts the
 * child off. The child checks it inherited none of the broker's stray
 * descriptors. Exit 0 on success. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <moat/moat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define EXPECT(cond)                                                                  \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      fprintf(stderr, "embed_process.c[%d]:%d: %s (moat: %s)\n", (int)getpid(),       \
              __LINE__, #cond, MoatGetLastErrorMessage());                            \
      _exit(1);                                                                       \
    }                                                                                 \
  } while (0)

static void Nap(void) {
  struct timespec ts = {0, 1000000L};
  nanosleep(&ts, NULL);
}

/* MoatReadMessage, retried for up to 20 s while SHOULD_WAIT (no event loop here). */
static MoatResult ReadWaiting(MoatHandle h, char* buf, uint32_t* n, MoatHandle* handles,
                              uint32_t* nh, int* fds, uint32_t* nf) {
  const uint32_t cn = *n, ch = nh ? *nh : 0, cf = nf ? *nf : 0;
  MoatResult r = MOAT_RESULT_SHOULD_WAIT;
  for (int i = 0; i < 20000 && r == MOAT_RESULT_SHOULD_WAIT; ++i) {
    *n = cn;
    if (nh) *nh = ch;
    if (nf) *nf = cf;
    r = MoatReadMessage(h, NULL, buf, n, handles, nh, fds, nf);
    if (r == MOAT_RESULT_SHOULD_WAIT) Nap();
  }
  return r;
}

static int PeerClosed(MoatHandle h) {
  struct MoatHandleSignalsState s;
  s.struct_size = sizeof(s);
  return MoatQueryHandleSignalsState(h, &s) != MOAT_RESULT_OK ||
         (s.satisfied_signals & MOAT_HANDLE_SIGNAL_PEER_CLOSED) != 0;
}

static int Child(int stray) {
  MoatHandle boot, pipe = MOAT_HANDLE_INVALID;
  char buf[16];
  uint32_t n = sizeof(buf), nh = 1, nf = 1;
  int fd = -1;
  EXPECT(fcntl(stray, F_GETFD) == -1); /* the broker's stray descriptor did not leak */
  EXPECT(MoatAcceptInvitation(-1, NULL, &boot) == MOAT_RESULT_OK);
  EXPECT(ReadWaiting(boot, buf, &n, &pipe, &nh, &fd, &nf) == MOAT_RESULT_OK);
  EXPECT(n == 5 && memcmp(buf, "hello", 5) == 0 && nh == 1 && nf == 1);
  EXPECT(MoatWriteMessage(pipe, "pong", 4, NULL, 0, NULL, 0, NULL) == MOAT_RESULT_OK);
  EXPECT(write(fd, "fd-ok", 5) == 5);
  close(fd);
  EXPECT(MoatWriteMessage(boot, "evil", 4, NULL, 0, NULL, 0, NULL) == MOAT_RESULT_OK);
  for (int i = 0; i < 20000 && !PeerClosed(boot); ++i) Nap();
  EXPECT(PeerClosed(boot)); /* cut off by the broker's bad-message report */
  _exit(0); /* moat's IO threads still run: no static teardown */
}

int main(int argc, char** argv) {
  if (argc == 3 && strcmp(argv[1], "child") == 0) return Child(atoi(argv[2]));
  EXPECT(MoatStartBroker(NULL) == MOAT_RESULT_OK);
  /* A descriptor someone forgot to make close-on-exec (numbered away from
   * the child's 0-3, which it does get). */
  const int stray = fcntl(open("/dev/null", O_RDONLY), F_DUPFD, 50);
  EXPECT(stray >= 0);
  char stray_arg[16];
  snprintf(stray_arg, sizeof(stray_arg), "%d", stray);
  const char* args[] = {"child", stray_arg};
  int64_t pid = -1;
  MoatHandle boot, x, y, context = MOAT_HANDLE_INVALID;
  EXPECT(MoatLaunchChild("/proc/self/exe", args, 2, NULL, &pid, &boot) == MOAT_RESULT_OK);
  EXPECT(MoatCreateMessagePipe(NULL, &x, &y) == MOAT_RESULT_OK);
  int os_pipe[2];
  EXPECT(pipe2(os_pipe, O_CLOEXEC) == 0);
  EXPECT(MoatWriteMessage(boot, "hello", 5, &y, 1, &os_pipe[1], 1, NULL) == MOAT_RESULT_OK);
  char buf[16];
  uint32_t n = sizeof(buf);
  EXPECT(ReadWaiting(x, buf, &n, NULL, NULL, NULL, NULL) == MOAT_RESULT_OK);
  EXPECT(n == 4 && memcmp(buf, "pong", 4) == 0);
  EXPECT(read(os_pipe[0], buf, sizeof(buf)) == 5 && memcmp(buf, "fd-ok", 5) == 0);
  MoatResult r = MOAT_RESULT_SHOULD_WAIT;
  for (int i = 0; i < 20000 && r == MOAT_RESULT_SHOULD_WAIT; ++i) {
    n = sizeof(buf);
    r = MoatReadMessageWithContext(boot, NULL, buf, &n, NULL, NULL, NULL, NULL, &context);
    if (r == MOAT_RESULT_SHOULD_WAIT) Nap();
  }
  EXPECT(r == MOAT_RESULT_OK && n == 4 && memcmp(buf, "evil", 4) == 0);
  const char reason[] = "evil is not a request";
  EXPECT(MoatNotifyBadMessage(context, reason, sizeof(reason) - 1, NULL) == MOAT_RESULT_OK);
  for (int i = 0; i < 20000 && !PeerClosed(boot); ++i) Nap();
  EXPECT(PeerClosed(boot));
  int status = 0;
  EXPECT(waitpid((pid_t)pid, &status, 0) == (pid_t)pid);
  EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  printf("embed_process.c: child launched, pipe and descriptor passed, bad message reported\n");
  fflush(stdout);
  _exit(0);
}
