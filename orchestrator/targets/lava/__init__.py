"""LAVA, in one room: the target (target.py: `--target lava[+https://HOST]`), the job it
writes (job.py), the test script the guest runs and the frame around each binary's output
(guest.py), the job log read back (log.py) and a LAVA server's REST API (server.py).

Reading a finished job as testcases is testing/lavaresults.py: it judges results like the
SSH path does (testing/testrun.py), a tier above this one.
"""
