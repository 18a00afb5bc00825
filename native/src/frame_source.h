// A native frame loop (issue 13): a thread of its own reads raw camera frames of a fixed size from a file
// descriptor (the ffmpeg pipe of the agent's camera), runs each through the function attached to it (the
// model's frame call: the frame written into the plan's input, the plan run, the scores read), and keeps the
// results in a ring that the agent's JavaScript drains once per stats interval. No JavaScript, V8 or Node-API
// runs per frame, and the frame path allocates nothing.
//
// Invariants:
//  - The attached function and everything it touches (the plan's buffers) belong to the loop thread while it
//    is attached: the loop holds the source's mutex for the whole of a frame's run, and attach() takes it, so
//    when attach() returns the function it replaced is not running and will not run again (a model swap never
//    frees a plan in use).
//  - Newest frame only: when more whole frames are waiting in the pipe than the one just read, the older ones
//    are read and dropped, so the latency never accumulates (as the JavaScript camera does).
//  - A record's latency is the frame's window: from its last byte read (and the newer-frame check) to its
//    scores and class ready; the pipe read and the ring are outside it. With warm-ups (warm_ahead), a frame
//    that came while one ran is charged from the warm-up's start.
//  - The loop ends on end of stream, a partial frame at end of stream, a read error or an error of the
//    attached function; it says which in the status message. Stop wakes a loop blocked on the pipe.
#ifndef WHITTLE_FRAME_SOURCE_H_
#define WHITTLE_FRAME_SOURCE_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// The result of one frame.
typedef struct whittle_frame_record {
  uint64_t index;       // the frame's number in the stream: every whole frame read counts, dropped ones too
  double latency_ms;    // frame bytes read -> scores ready
  uint32_t generation;  // the generation passed to the attach that was in force
  uint32_t class_index;
  float confidence;
} whittle_frame_record;

// Runs one frame (frame_bytes bytes): NULL with the class index and its confidence, or a message (the loop
// then ends with it). Called on the loop thread with the source's mutex held.
typedef const char* (*whittle_frame_fn)(void* context, const uint8_t* frame, uint32_t* class_index,
                                        float* confidence);

typedef struct whittle_frame_source whittle_frame_source;

typedef struct whittle_frame_source_status {
  uint64_t received;  // whole frames read
  uint64_t dropped;   // frames read but not run: a newer one was waiting, or no function was attached
  uint64_t lost;      // records overwritten in the ring before they were drained
  uint64_t warmups;   // warm-up runs (whittle_frame_source_warm_ahead)
  bool ended;         // the loop has stopped reading; message says why
  char message[192];
} whittle_frame_source_status;

// Starts a loop reading frames of frame_bytes (> 0) from fd, keeping up to capacity (> 0) undrained records.
// The source owns fd from then on (stop closes it), even when it fails to start. Returns NULL and a static
// message in *error when the arguments are bad or the thread, its wake-up pipe or memory cannot be had.
whittle_frame_source* whittle_frame_source_start(int fd, size_t frame_bytes, size_t capacity,
                                                 const char** error);

// Attaches fn(context, ...) to the frames from now on, its records tagged with generation; fn NULL detaches
// (frames are then read and dropped). Waits for the frame in flight: on return the previous function is not
// running.
void whittle_frame_source_attach(whittle_frame_source* source, whittle_frame_fn fn, void* context,
                                 uint32_t generation);

// Warm-ups ahead of the frames: with lead_ms > 0, the loop runs the last frame again through the attached
// function, its result dropped (no record; status.warmups counts them), so that the function's code and
// data are in the caches when the next frame comes: first lead_ms before the next frame may come (the
// shortest of the last 8 gaps between frames has passed since the last one), then every lead_ms until it
// comes, at most 16 times per frame. A frame whose bytes came while a warm-up ran waited for it: its window
// (record.latency_ms) then starts when that warm-up started. None before the second frame, nor when frames
// come less than 2 x lead_ms apart, nor when the last frame's run took more than lead_ms / 4 or the
// warm-ups would take more than 5 % of the interval between frames (their cost to the device is bounded,
// and a frame waits at most lead_ms / 4 for one). 0 (the default) turns them off. Takes effect from the
// next wait on the pipe.
void whittle_frame_source_warm_ahead(whittle_frame_source* source, double lead_ms);

// Moves up to max of the oldest undrained records into out; returns how many.
size_t whittle_frame_source_drain(whittle_frame_source* source, whittle_frame_record* out, size_t max);

void whittle_frame_source_status_of(whittle_frame_source* source, whittle_frame_source_status* out);

// The last frame run and its record: copies the frame into frame (frame_bytes bytes) and returns true, or
// returns false when no frame has been run yet.
bool whittle_frame_source_last(whittle_frame_source* source, uint8_t* frame, whittle_frame_record* record);

// Stops the loop (waking it when it waits on the pipe), joins it, closes fd and frees the source. NULL is a
// no-op.
void whittle_frame_source_stop(whittle_frame_source* source);

#ifdef __cplusplus
}
#endif

#endif  // WHITTLE_FRAME_SOURCE_H_
