"""Verified PostgreSQL backups of the Depotix database, through its container.

One implementation for every caller: the backup role's tasks, the host's cron
schedule, backup.yml, restore.yml and the deploy's undo all run depotix-backup, which
prints one JSON document on stdout and, on failure, one line on stderr saying what
went wrong and what to do (with --log, both go to that file instead).

A dump is written under a temporary name, checksummed, checked with
`pg_restore --list`, and only then renamed, its files flushed to the disk and its
record renamed last: a run that fails or dies never leaves a file that counts as a
good backup. Dumps are ordered by the sequence number in their record, not by the
clock. Drills (and `verify --restore`) load a dump into a scratch database and
compare every table's row count and content checksum with those recorded in the
dump's snapshot; a restore compares the row counts, and only then swaps the new
database in. The scheduled job and the drill write their outcome to a status file
for monitoring (node_exporter's textfile format).

Commands that write (dump, restore, drill, prune, offsite, scheduled) hold a lock
in the backup directory, so the host's schedule and a play never interleave.

The backup role installs this package in its lib_dir (backup_lib_dir), beside
release_ledger.py; /usr/local/sbin/depotix-backup only finds it and calls cli.main.
"""
