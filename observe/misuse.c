/*
 * The error the async macros report when a frame resumes at a point its
 * switch does not contain (pollux/async.h). It lives here rather than in
 * api/ because it logs, and the log belongs to observe/.
 */
#include "observe/observe.h"
#include "pollux/async.h"

px_poll px_async_bad_resume(px_future *self) {
  const char *name = self->vtable != NULL && self->vtable->name != NULL
                         ? self->vtable->name
                         : "?";
  /* The resume point is the __LINE__ of the await that suspended: an await
   * inside a switch of the user's own registered its case label with that
   * switch, so the frame's switch has no case for it. */
  PX__LOG(PX__LOG_ERROR,
          "async fn %s resumed at line %u, which is not an await of its "
          "body: a PX_AWAIT or PX_YIELD inside a switch of your own? "
          "(failing with PX_EMISUSE)",
          name, (unsigned)(self->state & PX_FUTURE_USER_MASK));
  /* The frame finishes here: what it awaits and its cleanups go now, as
   * on any other way out (pollux/async.h). */
  px_async_finish((px_async *)self);
  self->error = PX_EMISUSE;
  return PX_READY;
}
