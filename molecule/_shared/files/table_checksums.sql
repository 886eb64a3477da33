-- The contents of every application table of the public schema, as checksums, one JSON
-- object per table and line: {"<table>": {"key": [primary key columns], "rows": n,
-- "md5": md5 of the rows' text in key order, "cells": {"<key>": {"<column>": md5 of the
-- value, or null for NULL}}}}. Run with psql (it needs \gexec); read-only.
--
-- Left out: Django's bookkeeping (django_migrations, which a rollback changes on
-- purpose, and django_session), and the stock writer's rows (molecule/_shared/files/
-- stock_writer.py notes its movements `writer:<name>:<n>`; tasks/writer_start.yml gives
-- it an item with sku `writer-<name>`). The writer's rows are checked on their own.
WITH tables AS (
  SELECT c.oid, c.relname
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
    AND c.relname NOT IN ('django_migrations', 'django_session')
),
primary_keys AS (
  SELECT i.indrelid AS oid,
         json_agg(a.attname ORDER BY k.position) AS names,
         string_agg(format('t.%I', a.attname), ', ' ORDER BY k.position) AS order_by,
         'concat_ws(''|'', ' || string_agg(format('t.%I', a.attname), ', ' ORDER BY k.position) || ')' AS key_text
  FROM pg_index i
  CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, position)
  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
  WHERE i.indisprimary
  GROUP BY i.indrelid
),
writer_rows AS (
  -- Where the writer's rows are, by table: a column and the prefix of its value.
  SELECT w.relname,
         string_agg(format('NOT coalesce(starts_with(t.%I, %L), false)', w.attname, w.prefix), ' AND ') AS excluded
  FROM (VALUES ('inventory_stockmovement', 'note', 'writer:'),
               ('inventory_inventoryitem', 'sku', 'writer-')) AS w(relname, attname, prefix)
  JOIN tables USING (relname)
  JOIN pg_attribute a ON a.attrelid = tables.oid AND a.attname = w.attname AND NOT a.attisdropped
  GROUP BY w.relname
)
SELECT format(
  $sql$SELECT json_build_object(%L, json_build_object(
     'key', %L::json,
     'rows', count(*),
     'md5', md5(coalesce(string_agg(t::text, E'\n' ORDER BY %s), '')),
     'cells', coalesce(json_object_agg(%s, (SELECT json_object_agg(c.key, md5(c.value))
                                            FROM json_each_text(row_to_json(t)) AS c)), '{}')))
   FROM %I AS t WHERE %s$sql$,
  tables.relname,
  coalesce(primary_keys.names, '[]'),
  -- A table without a primary key (Django makes none) is keyed by its rows' text.
  coalesce(primary_keys.order_by, 't::text'),
  coalesce(primary_keys.key_text, 'md5(t::text)'),
  tables.relname,
  coalesce(writer_rows.excluded, 'true'))
FROM tables
LEFT JOIN primary_keys USING (oid)
LEFT JOIN writer_rows USING (relname)
ORDER BY tables.relname
\gexec
