"""Sample exports of other newsletter services, written from each one's documented format.

Quirks kept on purpose: Mailchimp writes one file per status, CRLF line ends, a BOM-less
header with quoted names, merge fields before its system columns, times without a zone
and ``TAGS`` as a list of quoted names inside one cell; Substack writes ``true``/``false``
booleans (``active_subscription`` is the paid plan, ``email_disabled`` the unsubscribe);
Buttondown puts JSON in ``metadata`` and ``tags``; listmonk puts a JSON object in
``attributes`` and prints times as Go does (``2024-03-05 10:11:12.345678 +0000 UTC``).
"""

MAILCHIMP_HEADER = (
    '"Email Address","First Name","Last Name",Company,MEMBER_RATING,OPTIN_TIME,OPTIN_IP,'
    "CONFIRM_TIME,CONFIRM_IP,LATITUDE,LONGITUDE,GMTOFF,DSTOFF,TIMEZONE,CC,REGION,"
    "LAST_CHANGED,LEID,EUID,NOTES,TAGS"
)

MAILCHIMP_SUBSCRIBED = (
    MAILCHIMP_HEADER
    + "\r\n"
    + 'ada@example.com,Ada,Lovelace,"Analytical Engines, Ltd",4,"2024-03-14 09:12:31",'
    '203.0.113.7,"2024-03-14 09:14:02",198.51.100.4,51.5,-0.12,0,1,Europe/London,GB,ENG,'
    '"2024-05-01 10:00:00",55331253,89501affba,,"""VIP"",""Early readers"""\r\n'
    + "grace@example.com,Grace,Hopper,,3,,,"
    '"2024-04-02 08:00:00",,,,,,,,,"2024-04-02 08:00:00",55331257,c9b2705aa1,,\r\n'
    + 'MIXED.Case@Example.COM,"=HYPERLINK(""http://evil.example"")",,,2,'
    '"2024-01-01 00:00:00",not-an-ip,,,,,,,,,,"2024-01-01 00:00:00",1,abc,,\r\n'
    + "not-an-address,Broken,Row,,1,,,,,,,,,,,,,2,def,,\r\n"
)

MAILCHIMP_UNSUBSCRIBED = (
    MAILCHIMP_HEADER
    + ",UNSUB_TIME,UNSUB_CAMPAIGN_TITLE,UNSUB_CAMPAIGN_ID,UNSUB_REASON,UNSUB_REASON_OTHER\r\n"
    + 'left@example.com,Lef,Tover,,2,,,"2023-01-01 00:00:00",,,,,,,,,'
    '"2024-02-02 12:00:00",7,aa,,,"2024-02-02 12:00:00","March issue",a1b2c3,'
    '"I no longer want to receive these emails",\r\n'
    + 'angry@example.com,An,Gry,,1,,,"2023-01-01 00:00:00",,,,,,,,,'
    '"2024-02-03 12:00:00",8,bb,,,"2024-02-03 12:00:00","March issue",a1b2c3,'
    "Abuse,\r\n"
)

MAILCHIMP_CLEANED = (
    MAILCHIMP_HEADER
    + ",CLEAN_TIME,CLEAN_CAMPAIGN_TITLE,CLEAN_CAMPAIGN_ID\r\n"
    + 'gone@example.com,Gone,Away,,1,,,"2022-01-01 00:00:00",,,,,,,,,'
    '"2024-02-04 12:00:00",9,cc,,,"2024-02-04 12:00:00","April issue",d4e5f6\r\n'
)

SUBSTACK = (
    "email,active_subscription,expiry,plan,email_disabled,created_at,first_payment_at\n"
    "free@example.com,false,,other,false,2023-06-01T10:20:30.000Z,\n"
    "paid@example.com,true,2025-06-01T00:00:00.000Z,yearly,false,2023-05-01T08:00:00.000Z,"
    "2023-05-01T08:00:00.000Z\n"
    "quiet@example.com,false,,other,true,2022-01-01T00:00:00.000Z,\n"
    "odd@example.com,maybe,,other,false,2022-01-01T00:00:00.000Z,\n"
)

BUTTONDOWN = (
    "id,email,notes,metadata,tags,creation_date,secondary_id,type,source,referrer_url,"
    "ip_address\n"
    '3f1c,reader@example.com,met at PyCon,"{""city"": ""Lisbon""}","[""python"", ""django""]",'
    "2024-02-01T09:00:00.123456+00:00,12,regular,import,https://blog.example/post,"
    "192.0.2.10\n"
    "3f1d,payer@example.com,,{},[],2024-02-02T09:00:00+00:00,13,premium,api,,\n"
    "3f1e,never@example.com,,{},[],2024-02-03T09:00:00+00:00,14,unactivated,form,,\n"
    "3f1f,gone@example.com,,{},[],2024-02-04T09:00:00+00:00,15,unsubscribed,form,,\n"
    "3f20,dead@example.com,,{},[],2024-02-05T09:00:00+00:00,16,undeliverable,form,,\n"
)

LISTMONK = (
    "uuid,email,name,attributes,status,created_at,updated_at\n"
    'a6a9b1b2-0000-4000-8000-000000000001,lm@example.com,List Monk,"{""city"": ""Bengaluru"", '
    '""projects"": 3}",enabled,2024-03-05 10:11:12.345678 +0000 UTC,'
    "2024-03-06 10:11:12.345678 +0000 UTC\n"
    "a6a9b1b2-0000-4000-8000-000000000002,blocked@example.com,Blocked,{},blocklisted,"
    "2024-03-05 10:11:12 +0000 UTC,2024-03-07 09:00:00 +0000 UTC\n"
    "a6a9b1b2-0000-4000-8000-000000000003,off@example.com,Off,{},disabled,"
    "2024-03-05 10:11:12 +0000 UTC,2024-03-05 10:11:12 +0000 UTC\n"
    "a6a9b1b2-0000-4000-8000-000000000004,badjson@example.com,Bad,{not json,enabled,"
    "2024-03-05 10:11:12 +0000 UTC,2024-03-05 10:11:12 +0000 UTC\n"
)
