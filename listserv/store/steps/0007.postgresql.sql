-- Step 7 decoded RFC 2047 names stored by earlier versions, with a Python
-- function registered in SQLite. A PostgreSQL database is only ever filled by
-- this version or later, or by "listserv store migrate-to" from an SQLite file
-- already past step 7: there is nothing to decode.
SELECT 1
