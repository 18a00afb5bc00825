// The native frame loop (frame_source.h explains it).
#define _GNU_SOURCE
#include "frame_source.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "threadpool.h"

struct whittle_frame_source {
  int fd;
  int stop_read, stop_write;  // a byte on stop_write wakes the loop out of poll()
  size_t frame_bytes;
  whittle_thread* thread;
  atomic_uint_least64_t received;      // written by the loop only
  atomic_uint_least64_t warm_lead_ns;  // whittle_frame_source_warm_ahead's lead, 0: no warm-up runs
  // Under mutex: the attached function, the ring, the last frame, the counters below and the end.
  pthread_mutex_t mutex;
  whittle_frame_fn fn;
  void* context;
  uint32_t generation;
  whittle_frame_record* ring;
  size_t capacity, head, count;
  uint64_t dropped, lost, warmups;
  // Two frame buffers: the loop reads into buffers[reading] outside the mutex; buffers[reading ^ 1] holds
  // the last frame run (has_last), which whittle_frame_source_last copies under the mutex.
  uint8_t* buffers[2];
  size_t reading;
  bool has_last;
  whittle_frame_record last;
  bool ended;
  char message[sizeof(((whittle_frame_source_status*)0)->message)];
};

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

// Records why the loop ends (the first reason only). Takes the mutex unless the caller holds it.
static void end_loop(whittle_frame_source* source, bool locked, const char* format, ...) {
  if (!locked) pthread_mutex_lock(&source->mutex);
  if (!source->ended) {
    va_list args;
    va_start(args, format);
    vsnprintf(source->message, sizeof(source->message), format, args);
    va_end(args);
    source->ended = true;
  }
  if (!locked) pthread_mutex_unlock(&source->mutex);
}

// Bytes waiting in the pipe (0 when the descriptor cannot say).
static size_t bytes_waiting(const whittle_frame_source* source) {
  int bytes = 0;
  if (ioctl(source->fd, FIONREAD, &bytes) != 0 || bytes < 0) return 0;
  return (size_t)bytes;
}

// Whole frames waiting in the pipe beyond the one just read.
static size_t frames_waiting(const whittle_frame_source* source) {
  return bytes_waiting(source) / source->frame_bytes;
}

// Reads exactly `bytes` that are known to be waiting; false on a read error or end of stream.
static bool read_waiting(int fd, uint8_t* out, size_t bytes) {
  while (bytes > 0) {
    const ssize_t n = read(fd, out, bytes);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    out += n;
    bytes -= (size_t)n;
  }
  return true;
}

// Runs the frame in buffers[reading] through the attached function: false when it failed (the loop ends).
// Its window starts at `start` (now_ms), or now when start is 0.
static bool run_frame(whittle_frame_source* source, uint64_t index, double start) {
  pthread_mutex_lock(&source->mutex);
  if (source->fn == NULL) {
    source->dropped++;
    pthread_mutex_unlock(&source->mutex);
    return true;
  }
  const double t0 = start > 0 ? start : now_ms();
  whittle_frame_record record = {index, 0, source->generation, 0, 0};
  const char* error =
      source->fn(source->context, source->buffers[source->reading], &record.class_index, &record.confidence);
  record.latency_ms = now_ms() - t0;
  if (error != NULL) {
    end_loop(source, true, "frame %llu: %s", (unsigned long long)index, error);
    pthread_mutex_unlock(&source->mutex);
    return false;
  }
  if (source->count == source->capacity) {
    source->head = (source->head + 1) % source->capacity;
    source->count--;
    source->lost++;
  }
  source->ring[(source->head + source->count) % source->capacity] = record;
  source->count++;
  source->last = record;
  source->has_last = true;
  source->reading ^= 1;
  pthread_mutex_unlock(&source->mutex);
  return true;
}

// A warm-up run (whittle_frame_source_warm_ahead): the last frame again through the attached function, its
// result dropped; true when it ran. Its errors are not reported: the next frame's run reports its own.
static bool warm_up(whittle_frame_source* source) {
  pthread_mutex_lock(&source->mutex);
  const bool run = source->fn != NULL && source->has_last;
  if (run) {
    uint32_t class_index;
    float confidence;
    (void)source->fn(source->context, source->buffers[source->reading ^ 1], &class_index, &confidence);
    source->warmups++;
  }
  pthread_mutex_unlock(&source->mutex);
  return run;
}

// Gaps between whole frames read, the last WARM_GAPS of them: the next frame is expected no sooner than the
// shortest (a camera's frames jitter by milliseconds on a loaded machine).
#define WARM_GAPS 8
// Most warm-ups between two frames: a camera that stalls is not warmed for ever.
#define MAX_WARMUPS_PER_FRAME 16
// Warm-ups only for a function whose run is short beside the lead, so that a frame arriving during one
// waits at most a quarter of the lead; and at most a twentieth of the frame interval spent on them, so
// that they cost the device at most 5 % of a core at any model size (a model of a few milliseconds, as
// on a Raspberry Pi, gets none: its frame would wait for the warm-up, and it would run twice).
#define WARM_RUN_PER_LEAD 0.25
#define WARM_SHARE_OF_INTERVAL 0.05

typedef struct {
  double gaps[WARM_GAPS];
  size_t count, next;
  double last_arrival;  // when the last whole frame was read (0: none yet)
  double last_warm;     // when the last warm-up since then started (0: none)
  size_t warmups;       // warm-ups since the last frame
  double charge_from;   // a frame's bytes came during the warm-up that started then (0: none)
  double run_ms;        // the last frame's run through the attached function
} warm_schedule;

static void warm_frame_read(warm_schedule* w, double now) {
  if (w->last_arrival > 0) {
    w->gaps[w->next] = now - w->last_arrival;
    w->next = (w->next + 1) % WARM_GAPS;
    if (w->count < WARM_GAPS) w->count++;
  }
  w->last_arrival = now;
  w->last_warm = 0;
  w->warmups = 0;
  w->charge_from = 0;
}

// How long to wait on the pipe before the next warm-up, ms, or -1 for no warm-up: the first `lead` before
// the shortest recent gap has passed since the last frame, then one every `lead` until the frame comes.
static double warm_wait(const warm_schedule* w, double lead, double now) {
  if (lead <= 0 || w->count == 0 || w->warmups >= MAX_WARMUPS_PER_FRAME) return -1;
  double shortest = w->gaps[0];
  for (size_t i = 1; i < w->count; i++) shortest = w->gaps[i] < shortest ? w->gaps[i] : shortest;
  if (shortest < 2 * lead) return -1;  // frames too close together to warm between them
  if (w->run_ms > WARM_RUN_PER_LEAD * lead ||
      (double)(w->warmups + 1) * w->run_ms > WARM_SHARE_OF_INTERVAL * shortest)
    return -1;  // too long a run to warm without delaying the frame or costing the device
  const double due = w->last_warm > 0 ? w->last_warm + lead : w->last_arrival + shortest - lead;
  return due > now ? due - now : 0;
}

static void loop_main(void* raw) {
  whittle_frame_source* source = raw;
  const size_t frame_bytes = source->frame_bytes;
  size_t filled = 0;
  warm_schedule warm = {{0}, 0, 0, 0, 0, 0, 0, 0};
  for (;;) {
    struct pollfd fds[2] = {{source->fd, POLLIN, 0}, {source->stop_read, POLLIN, 0}};
    const double lead = (double)atomic_load(&source->warm_lead_ns) / 1e6;
    const double left = filled == 0 ? warm_wait(&warm, lead, now_ms()) : -1;
    struct timespec timeout;
    if (left >= 0) {
      timeout.tv_sec = (time_t)(left / 1e3);
      timeout.tv_nsec = (long)((left - (double)timeout.tv_sec * 1e3) * 1e6);
    }
    const int ready = ppoll(fds, 2, left >= 0 ? &timeout : NULL, NULL);
    if (ready < 0) {
      if (errno == EINTR) continue;
      end_loop(source, false, "poll failed: %s", strerror(errno));
      return;
    }
    if (ready == 0) {  // the next frame may come within `lead` ms: warm the attached function's code and data
      const double t = now_ms();
      warm.last_warm = t;
      warm.warmups++;
      // A frame that came during the warm-up waited for it: its window starts when the warm-up did.
      if (bytes_waiting(source) == 0 && warm_up(source) && warm.charge_from == 0 &&
          bytes_waiting(source) != 0)
        warm.charge_from = t;
      continue;
    }
    if (fds[1].revents != 0) return;  // stopped
    if (fds[0].revents == 0) continue;
    uint8_t* buffer = source->buffers[source->reading];
    const ssize_t n = read(source->fd, buffer + filled, frame_bytes - filled);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      end_loop(source, false, "reading frames failed: %s", strerror(errno));
      return;
    }
    if (n == 0) {
      if (filled != 0)
        end_loop(source, false, "the stream ended inside a frame: %zu of %zu bytes", filled, frame_bytes);
      else
        end_loop(source, false, "the stream ended");
      return;
    }
    filled += (size_t)n;
    if (filled < frame_bytes) continue;
    filled = 0;
    const double start = warm.charge_from;
    warm_frame_read(&warm, now_ms());
    uint64_t index = atomic_fetch_add(&source->received, 1);
    // Newest frame only: the frames waiting behind this one replace it, each counted as dropped.
    for (size_t waiting = frames_waiting(source); waiting > 0; waiting--) {
      if (!read_waiting(source->fd, buffer, frame_bytes)) {
        end_loop(source, false, "reading frames failed: %s", strerror(errno));
        return;
      }
      index = atomic_fetch_add(&source->received, 1);
      pthread_mutex_lock(&source->mutex);
      source->dropped++;
      pthread_mutex_unlock(&source->mutex);
    }
    const double run_start = now_ms();
    if (!run_frame(source, index, start)) return;
    warm.run_ms = now_ms() - run_start;
  }
}

static void free_source(whittle_frame_source* source) {
  if (source->fd >= 0) close(source->fd);
  if (source->stop_read >= 0) close(source->stop_read);
  if (source->stop_write >= 0) close(source->stop_write);
  pthread_mutex_destroy(&source->mutex);
  free(source->ring);
  free(source->buffers[0]);
  free(source->buffers[1]);
  free(source);
}

whittle_frame_source* whittle_frame_source_start(int fd, size_t frame_bytes, size_t capacity,
                                                 const char** error) {
  if (fd < 0 || frame_bytes == 0 || capacity == 0 || capacity > SIZE_MAX / sizeof(whittle_frame_record)) {
    if (fd >= 0) close(fd);
    *error = "a file descriptor, a frame size and a capacity, all positive";
    return NULL;
  }
  whittle_frame_source* source = calloc(1, sizeof(*source));
  if (source == NULL) {
    close(fd);
    *error = "out of memory";
    return NULL;
  }
  source->fd = fd;
  source->stop_read = source->stop_write = -1;
  source->frame_bytes = frame_bytes;
  source->capacity = capacity;
  atomic_init(&source->received, 0);
  atomic_init(&source->warm_lead_ns, 0);
  pthread_mutex_init(&source->mutex, NULL);
  source->ring = malloc(capacity * sizeof(whittle_frame_record));
  source->buffers[0] = malloc(frame_bytes);
  source->buffers[1] = malloc(frame_bytes);
  if (source->ring == NULL || source->buffers[0] == NULL || source->buffers[1] == NULL) {
    free_source(source);
    *error = "out of memory";
    return NULL;
  }
  int stop[2];
  if (pipe2(stop, O_CLOEXEC) != 0) {
    free_source(source);
    *error = "cannot create the loop's wake-up pipe";
    return NULL;
  }
  source->stop_read = stop[0];
  source->stop_write = stop[1];
  source->thread = whittle_thread_start(loop_main, source);
  if (source->thread == NULL) {
    free_source(source);
    *error = "cannot start the frame loop's thread";
    return NULL;
  }
  return source;
}

void whittle_frame_source_attach(whittle_frame_source* source, whittle_frame_fn fn, void* context,
                                 uint32_t generation) {
  pthread_mutex_lock(&source->mutex);
  source->fn = fn;
  source->context = fn == NULL ? NULL : context;
  source->generation = generation;
  pthread_mutex_unlock(&source->mutex);
}

void whittle_frame_source_warm_ahead(whittle_frame_source* source, double lead_ms) {
  atomic_store(&source->warm_lead_ns, lead_ms > 0 ? (uint64_t)(lead_ms * 1e6) : 0);
}

size_t whittle_frame_source_drain(whittle_frame_source* source, whittle_frame_record* out, size_t max) {
  pthread_mutex_lock(&source->mutex);
  const size_t n = max < source->count ? max : source->count;
  for (size_t i = 0; i < n; i++) out[i] = source->ring[(source->head + i) % source->capacity];
  source->head = (source->head + n) % source->capacity;
  source->count -= n;
  pthread_mutex_unlock(&source->mutex);
  return n;
}

void whittle_frame_source_status_of(whittle_frame_source* source, whittle_frame_source_status* out) {
  out->received = atomic_load(&source->received);
  pthread_mutex_lock(&source->mutex);
  out->dropped = source->dropped;
  out->lost = source->lost;
  out->warmups = source->warmups;
  out->ended = source->ended;
  memcpy(out->message, source->message, sizeof(out->message));
  pthread_mutex_unlock(&source->mutex);
}

bool whittle_frame_source_last(whittle_frame_source* source, uint8_t* frame, whittle_frame_record* record) {
  pthread_mutex_lock(&source->mutex);
  const bool has = source->has_last;
  if (has) {
    memcpy(frame, source->buffers[source->reading ^ 1], source->frame_bytes);
    *record = source->last;
  }
  pthread_mutex_unlock(&source->mutex);
  return has;
}

void whittle_frame_source_stop(whittle_frame_source* source) {
  if (source == NULL) return;
  const uint8_t byte = 1;
  ssize_t written;
  do {
    written = write(source->stop_write, &byte, 1);
  } while (written < 0 && errno == EINTR);
  whittle_thread_join(source->thread);
  free_source(source);
}
