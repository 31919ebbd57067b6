"""Two processes, each holding a record lock the other then waits for: the second wait must
fail with EDEADLK (as on ext4), not hang. Prints the waiting child's verdict:
0 = EDEADLK, 1 = it was granted, 2 = another error."""
import errno
import fcntl
import os
import sys
import time

path = sys.argv[1]
a = open(path, "r+")
ready_r, ready_w = os.pipe()
waiting_r, waiting_w = os.pipe()
child = os.fork()
if child == 0:
    b = open(path, "r+")
    fcntl.lockf(b, fcntl.LOCK_EX, 10, 10)  # B holds [10, 20)
    os.write(ready_w, b"1")
    os.read(waiting_r, 1)
    time.sleep(0.3)  # A is blocked by now
    try:
        fcntl.lockf(b, fcntl.LOCK_EX, 10, 0)  # B waits for A's [0, 10): a cycle
        os._exit(1)
    except OSError as e:
        os._exit(0 if e.errno == errno.EDEADLK else 2)
fcntl.lockf(a, fcntl.LOCK_EX, 10, 0)  # A holds [0, 10)
os.read(ready_r, 1)
os.write(waiting_w, b"1")
fcntl.lockf(a, fcntl.LOCK_EX, 10, 10)  # A waits for B's [10, 20); granted when B exits
_, status = os.waitpid(child, 0)
print(os.waitstatus_to_exitcode(status))
