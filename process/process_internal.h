/*
 * Knobs of the process library for its tests (internal).
 */
#ifndef POLLUX_PROCESS_INTERNAL_H
#define POLLUX_PROCESS_INTERNAL_H

#ifdef __cplusplus
extern "C" {
#endif

#define PX__REAPER_SIGCHLD 0 /* the portable path: SIGCHLD + reaper thread */
#define PX__REAPER_PIDFD 1   /* a pidfd per child, where the kernel has it */

/*
 * Chooses how children spawned from now on are reaped. Without a call, the
 * environment decides once: PX_PROCESS_REAPER=sigchld forces the SIGCHLD
 * path, anything else means pidfd where available. Children already
 * running keep their path.
 */
void px__process_set_reaper(int mode);

#ifdef __cplusplus
}
#endif

#endif
