-- Names arrived as raw RFC 2047 encoded words (=?iso-8859-1?Q?M=FCller?=)
-- before names were decoded where they enter; decode the ones stored,
-- in members and in the requests still waiting for a reply.
-- rfc2047_decode is mail.message.decode_words, registered by the store.
UPDATE members SET display_name = rfc2047_decode(display_name)
    WHERE display_name LIKE '%=?%?=%';
UPDATE tokens SET data = json_set(data, '$.name',
                                  rfc2047_decode(json_extract(data, '$.name')))
    WHERE json_valid(data) AND json_extract(data, '$.name') LIKE '%=?%?=%'
