<?php
// The test IdP's users ('login:password' => attributes). The windowsaccountname claim is what
// ssogate's tests map to the agent's user name, as an ADFS deployment would.
$wan = 'http://schemas.microsoft.com/ws/2008/06/identity/claims/windowsaccountname';
$config = [
    'admin' => ['core:AdminPassword'],
    'users' => [
        'exampleauth:UserPass',
        'agent1:agent1pass' => ['uid' => ['agent1'], $wan => ['EXAMPLE\\agent1'],
            'email' => ['agent1@example.org'], 'displayName' => ['Agent One'], 'groups' => ['agents']],
        'agent2:agent2pass' => ['uid' => ['agent2'], $wan => ['EXAMPLE\\agent2'],
            'email' => ['agent2@example.org'], 'displayName' => ['Agent Two'], 'groups' => ['agents']],
        'supervisor1:supervisor1pass' => ['uid' => ['supervisor1'], $wan => ['EXAMPLE\\supervisor1'],
            'email' => ['supervisor1@example.org'], 'displayName' => ['Supervisor One'],
            'groups' => ['agents', 'supervisors']],
    ],
];
