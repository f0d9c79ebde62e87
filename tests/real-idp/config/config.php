<?php
// SimpleSAMLphp 1.19 configuration of the loopback test IdP. idp.py copies this file into its
// work directory with every {{NAME}} replaced; edit it here.
$config = [
    'baseurlpath' => '{{BASEURL}}',
    'certdir' => '{{WORKDIR}}/cert/',
    'loggingdir' => '{{WORKDIR}}/log/',
    'datadir' => '{{WORKDIR}}/data/',
    'tempdir' => '{{WORKDIR}}/tmp',
    'metadatadir' => '{{WORKDIR}}/metadata/',
    'attributenamemapdir' => '/usr/share/simplesamlphp/config/attributemap/',

    'technicalcontact_name' => 'ssogate tests',
    'technicalcontact_email' => 'tests@example.org',
    'timezone' => 'UTC',
    'secretsalt' => '{{SECRETSALT}}',
    'auth.adminpassword' => '{{SECRETSALT}}',
    'admin.protectindexpage' => false,
    'admin.protectmetadata' => false,
    'admin.checkforupdates' => false,

    // Logout may return the browser to our SP on any loopback port.
    'trusted.url.regex' => true,
    'trusted.url.domains' => ['127\.0\.0\.1(:[0-9]+)?', 'localhost(:[0-9]+)?'],

    'debug' => ['saml' => true, 'backtraces' => true, 'validatexml' => false],
    'showerrors' => true,
    'errorreporting' => false,
    'logging.level' => SimpleSAML\Logger::INFO,
    'logging.handler' => 'file',
    'logging.logfile' => 'simplesamlphp.log',

    'enable.saml20-idp' => true,
    'enable.shib13-idp' => false,
    'enable.adfs-idp' => false,
    'module.enable' => ['exampleauth' => true, 'core' => true, 'saml' => true, 'admin' => true],

    'session.duration' => 8 * 60 * 60,
    'session.cookie.name' => 'TestIdPSessionID',
    'session.cookie.path' => '/',
    'session.cookie.secure' => false,
    'session.cookie.samesite' => null,
    'session.phpsession.cookiename' => 'TestIdP',
    'session.phpsession.savepath' => '{{WORKDIR}}/sessions',
    'session.phpsession.httponly' => true,
    'session.authtoken.cookiename' => 'TestIdPAuthToken',
    'language.default' => 'en',
    'language.available' => ['en'],
    'language.cookie.secure' => false,
    'language.cookie.samesite' => null,
    'store.type' => 'phpsession',
    'metadata.sources' => [['type' => 'flatfile']],
    'metadata.sign.enable' => false,
];
