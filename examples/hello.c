/*
 * The seed program, in C:
 *
 *   #[tokio::main]
 *   async fn main() {
 *       println!("Starting async operations...");
 *       let task1 = tokio::spawn(async { sleep(1 s).await; "Task 1 complete" });
 *       let task2 = tokio::spawn(async { sleep(500 ms).await; "Task 2 complete" });
 *       // wait for both, print the results in the order they completed
 *   }
 *
 * Prints two lines and takes about one second: the sleeps overlap.
 */
#include <stdio.h>

#include "pollux.h"

/* async fn say_after(delay, msg) -> &str { sleep(delay).await; msg } */
typedef struct {
  px_async px;
  px_duration delay;
  const char *msg;
  px_sleep sleep;
} say_after;

PX_ASYNC_FN(say_after) {
  PX_BEGIN();
  PX_AWAIT(px_sleep_init(&self->sleep, self->delay));
  PX_RETURN(px_ptr(self->msg));
  PX_END();
}

/* async fn main() */
typedef struct {
  px_async px;
  px_join_handle task1, task2;
  px_future *both[2];
  size_t order[2]; /* indices into `both`, in completion order */
  px_join join;
} async_main;

PX_ASYNC_FN(async_main) {
  PX_BEGIN();
  printf("Starting async operations...\n");

  { /* C locals end before the next await (-Wjump-misses-init checks it) */
    say_after t1 = PX_ASYNC_NEW(say_after, .delay = px_secs(1),
                                .msg = "Task 1 complete");
    say_after t2 = PX_ASYNC_NEW(say_after, .delay = px_ms(500),
                                .msg = "Task 2 complete");
    PX_TRY(px_spawn(PX_FUTURE(&t1), &self->task1));
    PX_TRY(px_spawn(PX_FUTURE(&t2), &self->task2));
  }

  self->both[0] = &self->task1.base;
  self->both[1] = &self->task2.base;
  PX_AWAIT(px_join_init(&self->join, self->both, 2, self->order));

  printf("%s, %s\n", (const char *)self->both[self->order[0]]->output.ptr,
         (const char *)self->both[self->order[1]]->output.ptr);
  PX_END();
}

int main(void) {
  async_main m = PX_ASYNC_NEW(async_main);
  int rc = px_run(PX_FUTURE(&m));
  if (rc < 0) {
    fprintf(stderr, "hello: %s\n", px_strerror(rc));
    return 1;
  }
  return 0;
}
