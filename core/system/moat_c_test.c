/* The C API used from C, as an embedder would: plain checks, a summary line,
 * and a non-zero exit status on any failure. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/system/moat.h"

static int g_passed = 0;
static int g_failed = 0;

#define CHECK(cond)                                                        \
  do {                                                                     \
    if (cond) {                                                            \
      ++g_passed;                                                          \
    } else {                                                               \
      ++g_failed;                                                          \
      fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n", __FILE__, \
              __LINE__, #cond, MoatGetLastErrorMessage());                 \
    }                                                                      \
  } while (0)

#define CHECK_RESULT(expr, expected)                                             \
  do {                                                                           \
    MoatResult r_ = (expr);                                                      \
    if (r_ == (expected)) {                                                      \
      ++g_passed;                                                                \
    } else {                                                                     \
      ++g_failed;                                                                \
      fprintf(stderr, "%s:%d: %s returned %s, expected %s (last error: %s)\n", \
              __FILE__, __LINE__, #expr, MoatResultToString(r_),                \
              MoatResultToString(expected), MoatGetLastErrorMessage());         \
    }                                                                            \
  } while (0)

static struct MoatTrapEvent g_events[16];
static int g_num_events = 0;

static void OnTrapEvent(const struct MoatTrapEvent* event) {
  if (g_num_events < 16) g_events[g_num_events++] = *event;
}

static MoatHandleSignals Satisfied(MoatHandle h) {
  struct MoatHandleSignalsState s;
  s.struct_size = sizeof(s);
  if (MoatQueryHandleSignalsState(h, &s) != MOAT_RESULT_OK) return 0;
  return s.satisfied_signals;
}

static void TestWriteAndTwoCallRead(void) {
  MoatHandle a, b;
  CHECK_RESULT(MoatCreateMessagePipe(NULL, &a, &b), MOAT_RESULT_OK);
  CHECK(a != MOAT_HANDLE_INVALID && b != MOAT_HANDLE_INVALID && a != b);

  uint32_t n = 0, nh = 0, nf = 0;
  CHECK_RESULT(MoatReadMessage(b, NULL, NULL, &n, NULL, &nh, NULL, &nf), MOAT_RESULT_SHOULD_WAIT);
  CHECK_RESULT(MoatWriteMessage(a, "hello, moat", 11, NULL, 0, NULL, 0, NULL), MOAT_RESULT_OK);
  CHECK((Satisfied(b) & MOAT_HANDLE_SIGNAL_READABLE) != 0);

  /* First call: sizes only; the message stays. */
  n = 0;
  CHECK_RESULT(MoatReadMessage(b, NULL, NULL, &n, NULL, &nh, NULL, &nf),
               MOAT_RESULT_RESOURCE_EXHAUSTED);
  CHECK(n == 11 && nh == 0 && nf == 0);
  char buf[32] = {0};
  n = sizeof(buf);
  CHECK_RESULT(MoatReadMessage(b, NULL, buf, &n, NULL, &nh, NULL, &nf), MOAT_RESULT_OK);
  CHECK(n == 11 && memcmp(buf, "hello, moat", 11) == 0);
  CHECK((Satisfied(b) & MOAT_HANDLE_SIGNAL_READABLE) == 0);

  CHECK_RESULT(MoatClose(a), MOAT_RESULT_OK);
  CHECK((Satisfied(b) & MOAT_HANDLE_SIGNAL_PEER_CLOSED) != 0);
  CHECK_RESULT(MoatWriteMessage(b, "x", 1, NULL, 0, NULL, 0, NULL),
               MOAT_RESULT_FAILED_PRECONDITION);
  CHECK_RESULT(MoatReadMessage(b, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
               MOAT_RESULT_FAILED_PRECONDITION);
  CHECK_RESULT(MoatClose(b), MOAT_RESULT_OK);
}

static void TestStaleHandleAndLastError(void) {
  MoatHandle a, b;
  CHECK_RESULT(MoatCreateMessagePipe(NULL, &a, &b), MOAT_RESULT_OK);
  CHECK_RESULT(MoatClose(a), MOAT_RESULT_OK);
  CHECK_RESULT(MoatClose(a), MOAT_RESULT_INVALID_ARGUMENT);
  CHECK(strstr(MoatGetLastErrorMessage(), "is not valid") != NULL);
  CHECK_RESULT(MoatWriteMessage(a, "x", 1, NULL, 0, NULL, 0, NULL), MOAT_RESULT_INVALID_ARGUMENT);
  CHECK_RESULT(MoatClose(MOAT_HANDLE_INVALID), MOAT_RESULT_INVALID_ARGUMENT);
  CHECK_RESULT(MoatClose(b), MOAT_RESULT_OK);
  CHECK(strcmp(MoatGetLastErrorMessage(), "") == 0);
}

static void TestHandlesAndDescriptorsTravel(void) {
  MoatHandle a, b, c, d;
  CHECK_RESULT(MoatCreateMessagePipe(NULL, &a, &b), MOAT_RESULT_OK);
  CHECK_RESULT(MoatCreateMessagePipe(NULL, &c, &d), MOAT_RESULT_OK);
  int p[2];
  CHECK(pipe2(p, O_CLOEXEC) == 0);
  int send_fds[1] = {p[1]};
  MoatHandle send_handles[1] = {c};
  CHECK_RESULT(MoatWriteMessage(a, "both", 4, send_handles, 1, send_fds, 1, NULL), MOAT_RESULT_OK);
  CHECK_RESULT(MoatClose(c), MOAT_RESULT_INVALID_ARGUMENT); /* it left with the message */

  char buf[8];
  MoatHandle got_handles[2];
  int got_fds[2];
  uint32_t n = sizeof(buf), nh = 0, nf = 0;
  CHECK_RESULT(MoatReadMessage(b, NULL, buf, &n, got_handles, &nh, got_fds, &nf),
               MOAT_RESULT_RESOURCE_EXHAUSTED);
  CHECK(n == 4 && nh == 1 && nf == 1);
  n = sizeof(buf);
  nh = 2;
  nf = 2;
  CHECK_RESULT(MoatReadMessage(b, NULL, buf, &n, got_handles, &nh, got_fds, &nf), MOAT_RESULT_OK);
  CHECK(nh == 1 && nf == 1);
  CHECK(write(got_fds[0], "z", 1) == 1);
  char z = 0;
  CHECK(read(p[0], &z, 1) == 1 && z == 'z');
  close(got_fds[0]);
  close(p[0]);

  CHECK_RESULT(MoatWriteMessage(d, "to moved", 8, NULL, 0, NULL, 0, NULL), MOAT_RESULT_OK);
  n = sizeof(buf);
  CHECK_RESULT(MoatReadMessage(got_handles[0], NULL, buf, &n, NULL, NULL, NULL, NULL),
               MOAT_RESULT_OK);
  CHECK(n == 8 && memcmp(buf, "to moved", 8) == 0);

  /* Attaching the writer itself is refused and nothing is consumed. */
  MoatHandle self[1] = {a};
  CHECK_RESULT(MoatWriteMessage(a, NULL, 0, self, 1, NULL, 0, NULL), MOAT_RESULT_INVALID_ARGUMENT);
  CHECK_RESULT(MoatClose(a), MOAT_RESULT_OK);
  CHECK_RESULT(MoatClose(b), MOAT_RESULT_OK);
  CHECK_RESULT(MoatClose(got_handles[0]), MOAT_RESULT_OK);
  CHECK_RESULT(MoatClose(d), MOAT_RESULT_OK);
}

static void TestQuotas(void) {
  MoatHandle a, b;
  CHECK_RESULT(MoatCreateMessagePipe(NULL, &a, &b), MOAT_RESULT_OK);
  CHECK_RESULT(MoatSetQuota(b, 7, 1, NULL), MOAT_RESULT_INVALID_ARGUMENT);
  CHECK_RESULT(MoatSetQuota(b, MOAT_QUOTA_TYPE_RECEIVE_QUEUE_LENGTH, 0, NULL),
               MOAT_RESULT_INVALID_ARGUMENT);
  CHECK_RESULT(MoatSetQuota(b, MOAT_QUOTA_TYPE_RECEIVE_QUEUE_LENGTH, 1, NULL), MOAT_RESULT_OK);
  CHECK_RESULT(MoatWriteMessage(a, "1", 1, NULL, 0, NULL, 0, NULL), MOAT_RESULT_OK);
  CHECK((Satisfied(b) & MOAT_HANDLE_SIGNAL_QUOTA_EXCEEDED) == 0);
  CHECK_RESULT(MoatWriteMessage(a, "2", 1, NULL, 0, NULL, 0, NULL), MOAT_RESULT_OK);
  CHECK((Satisfied(b) & MOAT_HANDLE_SIGNAL_QUOTA_EXCEEDED) != 0);
  uint64_t limit = 0, usage = 0;
  CHECK_RESULT(MoatQueryQuota(b, MOAT_QUOTA_TYPE_RECEIVE_QUEUE_LENGTH, NULL, &limit, &usage),
               MOAT_RESULT_OK);
  CHECK(limit == 1 && usage == 2);
  CHECK_RESULT(MoatSetQuota(b, MOAT_QUOTA_TYPE_RECEIVE_QUEUE_LENGTH, MOAT_QUOTA_LIMIT_NONE, NULL),
               MOAT_RESULT_OK);
  CHECK((Satisfied(b) & MOAT_HANDLE_SIGNAL_QUOTA_EXCEEDED) == 0);
  CHECK_RESULT(MoatClose(a), MOAT_RESULT_OK);
  CHECK_RESULT(MoatClose(b), MOAT_RESULT_OK);
}

static void TestTraps(void) {
  MoatHandle a, b, trap;
  CHECK_RESULT(MoatCreateMessagePipe(NULL, &a, &b), MOAT_RESULT_OK);
  CHECK_RESULT(MoatCreateTrap(OnTrapEvent, NULL, &trap), MOAT_RESULT_OK);
  CHECK_RESULT(MoatArmTrap(trap, NULL, NULL, NULL), MOAT_RESULT_NOT_FOUND);
  CHECK_RESULT(MoatAddTrigger(trap, b, MOAT_HANDLE_SIGNAL_READABLE,
                              MOAT_TRIGGER_CONDITION_SIGNALS_SATISFIED, 42, NULL),
               MOAT_RESULT_OK);
  CHECK_RESULT(MoatAddTrigger(trap, b, MOAT_HANDLE_SIGNAL_READABLE, 5, 43, NULL),
               MOAT_RESULT_INVALID_ARGUMENT);
  CHECK_RESULT(MoatArmTrap(trap, NULL, NULL, NULL), MOAT_RESULT_OK);
  g_num_events = 0;
  CHECK_RESULT(MoatWriteMessage(a, "ping", 4, NULL, 0, NULL, 0, NULL), MOAT_RESULT_OK);
  CHECK(g_num_events == 1);
  CHECK(g_events[0].trigger_context == 42 && g_events[0].result == MOAT_RESULT_OK);
  CHECK((g_events[0].signals_state.satisfied_signals & MOAT_HANDLE_SIGNAL_READABLE) != 0);
  /* Disarmed after firing: a second message is not delivered as an event. */
  CHECK_RESULT(MoatWriteMessage(a, "pong", 4, NULL, 0, NULL, 0, NULL), MOAT_RESULT_OK);
  CHECK(g_num_events == 1);

  /* Already satisfied: arming answers with the blocking events. */
  struct MoatTrapEvent blocking[2];
  blocking[0].struct_size = sizeof(blocking[0]);
  blocking[1].struct_size = sizeof(blocking[1]);
  uint32_t num = 2;
  CHECK_RESULT(MoatArmTrap(trap, NULL, &num, blocking), MOAT_RESULT_FAILED_PRECONDITION);
  CHECK(num == 1 && blocking[0].trigger_context == 42 && blocking[0].result == MOAT_RESULT_OK);

  /* Closing the watched handle cancels the trigger. */
  g_num_events = 0;
  CHECK_RESULT(MoatClose(b), MOAT_RESULT_OK);
  CHECK(g_num_events == 1 && g_events[0].result == MOAT_RESULT_CANCELLED);
  CHECK_RESULT(MoatRemoveTrigger(trap, 42, NULL), MOAT_RESULT_NOT_FOUND);
  CHECK_RESULT(MoatClose(trap), MOAT_RESULT_OK);
  CHECK_RESULT(MoatClose(a), MOAT_RESULT_OK);
}

static void TestFuse(void) {
  MoatHandle a, b, c, d;
  CHECK_RESULT(MoatCreateMessagePipe(NULL, &a, &b), MOAT_RESULT_OK);
  CHECK_RESULT(MoatCreateMessagePipe(NULL, &c, &d), MOAT_RESULT_OK);
  CHECK_RESULT(MoatFuseMessagePipes(a, b, NULL), MOAT_RESULT_FAILED_PRECONDITION);
  CHECK_RESULT(MoatFuseMessagePipes(b, c, NULL), MOAT_RESULT_OK);
  CHECK_RESULT(MoatWriteMessage(a, "fused", 5, NULL, 0, NULL, 0, NULL), MOAT_RESULT_OK);
  char buf[8];
  uint32_t n = sizeof(buf);
  CHECK_RESULT(MoatReadMessage(d, NULL, buf, &n, NULL, NULL, NULL, NULL), MOAT_RESULT_OK);
  CHECK(n == 5 && memcmp(buf, "fused", 5) == 0);
  CHECK_RESULT(MoatClose(a), MOAT_RESULT_OK);
  CHECK_RESULT(MoatClose(d), MOAT_RESULT_OK);
}

static void TestOptionsForwardCompatibility(void) {
  MoatHandle a, b;
  struct MoatCreateMessagePipeOptions bad_size = {4, 0};
  CHECK_RESULT(MoatCreateMessagePipe(&bad_size, &a, &b), MOAT_RESULT_INVALID_ARGUMENT);
  struct MoatCreateMessagePipeOptions unknown_flag = {sizeof(unknown_flag), 1};
  CHECK_RESULT(MoatCreateMessagePipe(&unknown_flag, &a, &b), MOAT_RESULT_UNIMPLEMENTED);
  struct MoatCreateMessagePipeOptions ok = {sizeof(ok), 0};
  CHECK_RESULT(MoatCreateMessagePipe(&ok, &a, &b), MOAT_RESULT_OK);
  struct MoatHandleSignalsState small;
  small.struct_size = 4;
  CHECK_RESULT(MoatQueryHandleSignalsState(a, &small), MOAT_RESULT_INVALID_ARGUMENT);
  CHECK_RESULT(MoatClose(a), MOAT_RESULT_OK);
  CHECK_RESULT(MoatClose(b), MOAT_RESULT_OK);
}

/* Issue 12 item 5a, as an embedder meets it: the outer handler runs outside
 * any ports delivery (MoatAddTrigger fires it on an armed trap), re-arms,
 * writes to a local pipe (which fires trigger 2: queued behind this handler)
 * and closes trigger 2's handle. Once MoatClose returned, trigger 2 may only
 * get its CANCELLED. */
static MoatHandle g_late_trap, g_late_a1, g_late_a2, g_late_b2;
static int g_late_closed = 0;
static int g_late_events = 0;
static int g_late_cancelled = 0;

static void OnLateTrapEvent(const struct MoatTrapEvent* event) {
  if (event->trigger_context == 2) {
    if (event->result == MOAT_RESULT_CANCELLED) {
      ++g_late_cancelled;
    } else if (g_late_closed) {
      ++g_late_events;
    }
    return;
  }
  if (event->trigger_context == 1 && event->result == MOAT_RESULT_OK) {
    char buf[8];
    uint32_t n = sizeof(buf);
    CHECK_RESULT(MoatReadMessage(g_late_a1, NULL, buf, &n, NULL, NULL, NULL, NULL),
                 MOAT_RESULT_OK);
    CHECK_RESULT(MoatArmTrap(g_late_trap, NULL, NULL, NULL), MOAT_RESULT_OK);
    CHECK_RESULT(MoatWriteMessage(g_late_b2, "x", 1, NULL, 0, NULL, 0, NULL), MOAT_RESULT_OK);
    CHECK_RESULT(MoatClose(g_late_a2), MOAT_RESULT_OK);
    g_late_closed = 1;
  }
}

static void TestNoEventAfterClose(void) {
  MoatHandle b1;
  CHECK_RESULT(MoatCreateMessagePipe(NULL, &g_late_a1, &b1), MOAT_RESULT_OK);
  CHECK_RESULT(MoatCreateMessagePipe(NULL, &g_late_a2, &g_late_b2), MOAT_RESULT_OK);
  CHECK_RESULT(MoatCreateTrap(OnLateTrapEvent, NULL, &g_late_trap), MOAT_RESULT_OK);
  CHECK_RESULT(MoatAddTrigger(g_late_trap, g_late_a2, MOAT_HANDLE_SIGNAL_READABLE,
                              MOAT_TRIGGER_CONDITION_SIGNALS_SATISFIED, 2, NULL),
               MOAT_RESULT_OK);
  CHECK_RESULT(MoatArmTrap(g_late_trap, NULL, NULL, NULL), MOAT_RESULT_OK);
  CHECK_RESULT(MoatWriteMessage(b1, "go", 2, NULL, 0, NULL, 0, NULL), MOAT_RESULT_OK);
  /* Armed, and a1 is readable: the trap fires from inside this call. */
  CHECK_RESULT(MoatAddTrigger(g_late_trap, g_late_a1, MOAT_HANDLE_SIGNAL_READABLE,
                              MOAT_TRIGGER_CONDITION_SIGNALS_SATISFIED, 1, NULL),
               MOAT_RESULT_OK);
  CHECK(g_late_closed == 1);
  CHECK(g_late_events == 0); /* a non-cancel event after MoatClose returned */
  CHECK(g_late_cancelled == 1);
  CHECK_RESULT(MoatClose(g_late_trap), MOAT_RESULT_OK);
  CHECK_RESULT(MoatClose(g_late_a1), MOAT_RESULT_OK);
  CHECK_RESULT(MoatClose(b1), MOAT_RESULT_OK);
  CHECK_RESULT(MoatClose(g_late_b2), MOAT_RESULT_OK);
}

/* Issue 12 item 6: the result codes and signal values Mojo programs rely on. */
static void TestMojoCompatibleCodes(void) {
  CHECK(MOAT_HANDLE_SIGNAL_READABLE == (1u << 0));
  CHECK(MOAT_HANDLE_SIGNAL_WRITABLE == (1u << 1));
  CHECK(MOAT_HANDLE_SIGNAL_PEER_CLOSED == (1u << 2));
  CHECK(MOAT_HANDLE_SIGNAL_QUOTA_EXCEEDED == (1u << 5)); /* Mojo's bit; 1<<3 is NEW_DATA_READABLE */
  CHECK(MOAT_RESULT_ALREADY_EXISTS == 6);
  CHECK(strcmp(MoatResultToString(MOAT_RESULT_ALREADY_EXISTS), "ALREADY_EXISTS") == 0);

  MoatHandle a, b, c, d, trap;
  CHECK_RESULT(MoatCreateMessagePipe(NULL, &a, &b), MOAT_RESULT_OK);
  CHECK_RESULT(MoatCreateMessagePipe(NULL, &c, &d), MOAT_RESULT_OK);
  /* The same handle attached twice: BUSY (Mojo: the second use finds it in transit). */
  MoatHandle twice[2] = {c, c};
  CHECK_RESULT(MoatWriteMessage(a, "x", 1, twice, 2, NULL, 0, NULL), MOAT_RESULT_BUSY);
  CHECK(strstr(MoatGetLastErrorMessage(), "attached twice") != NULL);
  /* Attaching the writer itself stays INVALID_ARGUMENT. */
  CHECK_RESULT(MoatWriteMessage(a, "x", 1, &a, 1, NULL, 0, NULL), MOAT_RESULT_INVALID_ARGUMENT);
  /* Both handles are still usable. */
  CHECK_RESULT(MoatWriteMessage(c, "c", 1, NULL, 0, NULL, 0, NULL), MOAT_RESULT_OK);

  /* A trigger context already in use: ALREADY_EXISTS, as in Mojo. */
  CHECK_RESULT(MoatCreateTrap(OnTrapEvent, NULL, &trap), MOAT_RESULT_OK);
  CHECK_RESULT(MoatAddTrigger(trap, b, MOAT_HANDLE_SIGNAL_READABLE,
                              MOAT_TRIGGER_CONDITION_SIGNALS_SATISFIED, 7, NULL),
               MOAT_RESULT_OK);
  CHECK_RESULT(MoatAddTrigger(trap, d, MOAT_HANDLE_SIGNAL_READABLE,
                              MOAT_TRIGGER_CONDITION_SIGNALS_SATISFIED, 7, NULL),
               MOAT_RESULT_ALREADY_EXISTS);
  /* The reserved bits (Mojo's NEW_DATA_READABLE, PEER_REMOTE) are unknown here. */
  CHECK_RESULT(MoatAddTrigger(trap, d, 1u << 3, MOAT_TRIGGER_CONDITION_SIGNALS_SATISFIED, 8,
                              NULL),
               MOAT_RESULT_INVALID_ARGUMENT);
  CHECK_RESULT(MoatAddTrigger(trap, d, MOAT_HANDLE_SIGNAL_QUOTA_EXCEEDED,
                              MOAT_TRIGGER_CONDITION_SIGNALS_SATISFIED, 9, NULL),
               MOAT_RESULT_OK);
  g_num_events = 0;
  CHECK_RESULT(MoatClose(trap), MOAT_RESULT_OK);
  CHECK(g_num_events == 2);
  CHECK_RESULT(MoatClose(a), MOAT_RESULT_OK);
  CHECK_RESULT(MoatClose(b), MOAT_RESULT_OK);
  CHECK_RESULT(MoatClose(c), MOAT_RESULT_OK);
  CHECK_RESULT(MoatClose(d), MOAT_RESULT_OK);
}

/* Issue 15 item 2, locally: a message context is a handle, consumed by
 * MoatNotifyBadMessage; a message written in this process cuts nobody off. */
static void TestMessageContextLocal(void) {
  MoatHandle a, b, context = MOAT_HANDLE_INVALID;
  CHECK_RESULT(MoatCreateMessagePipe(NULL, &a, &b), MOAT_RESULT_OK);
  CHECK_RESULT(MoatReadMessageWithContext(b, NULL, NULL, NULL, NULL, NULL, NULL, NULL, &context),
               MOAT_RESULT_SHOULD_WAIT);
  CHECK(context == MOAT_HANDLE_INVALID);
  CHECK_RESULT(MoatWriteMessage(a, "m", 1, NULL, 0, NULL, 0, NULL), MOAT_RESULT_OK);
  char buf[4];
  uint32_t n = sizeof(buf);
  CHECK_RESULT(MoatReadMessageWithContext(b, NULL, buf, &n, NULL, NULL, NULL, NULL, &context),
               MOAT_RESULT_OK);
  CHECK(context != MOAT_HANDLE_INVALID && n == 1);
  CHECK_RESULT(MoatNotifyBadMessage(b, "x", 1, NULL), MOAT_RESULT_INVALID_ARGUMENT);
  CHECK_RESULT(MoatNotifyBadMessage(context, "local", 5, NULL), MOAT_RESULT_OK);
  CHECK_RESULT(MoatClose(context), MOAT_RESULT_INVALID_ARGUMENT); /* consumed */
  /* Local: the pipe is not cut. */
  CHECK_RESULT(MoatWriteMessage(a, "m", 1, NULL, 0, NULL, 0, NULL), MOAT_RESULT_OK);
  CHECK_RESULT(MoatReadMessageWithContext(b, NULL, buf, &n, NULL, NULL, NULL, NULL, &context),
               MOAT_RESULT_OK);
  CHECK_RESULT(MoatClose(context), MOAT_RESULT_OK); /* or simply closed */
  CHECK_RESULT(MoatReadMessageWithContext(b, NULL, buf, &n, NULL, NULL, NULL, NULL, NULL),
               MOAT_RESULT_INVALID_ARGUMENT);
  CHECK_RESULT(MoatClose(a), MOAT_RESULT_OK);
  CHECK_RESULT(MoatClose(b), MOAT_RESULT_OK);
}

int main(void) {
  TestWriteAndTwoCallRead();
  TestStaleHandleAndLastError();
  TestHandlesAndDescriptorsTravel();
  TestQuotas();
  TestTraps();
  TestFuse();
  TestOptionsForwardCompatibility();
  TestNoEventAfterClose();
  TestMojoCompatibleCodes();
  TestMessageContextLocal();
  printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
