"""Verified PostgreSQL backups of the Depotix database, through its container.

One implementation for every caller: the backup role's tasks, the host's cron
schedule, backup.yml, restore.yml and the deploy's undo all run depotix-backup, which
prints one JSON document on stdout and, on failure, one line on stderr saying what
went wrong and what to do (with --log, both go to that file instead).

A dump is written under a temporary name, checksummed, checked with
`pg_restore --list`, and only then renamed: a run that fails never leaves a file
that looks like a good backup. Restores and drills load a dump into a new
database and compare its row counts with those recorded at dump time before
anything else happens; a restore only then swaps the new database in.

Commands that write (dump, restore, drill, prune, offsite, scheduled) hold a lock
in the backup directory, so the host's schedule and a play never interleave.

The backup role installs this package in its lib_dir (backup_lib_dir), beside
release_ledger.py; /usr/local/sbin/depotix-backup only finds it and calls cli.main.
"""
