<?php
// The hosted SAML 2.0 IdP: both front-channel bindings, RSA-SHA256 signatures on the Response,
// the Assertion and the logout messages; NameIDs for every common format.
$metadata['{{ENTITYID}}'] = [
    'host' => '__DEFAULT__',
    'privatekey' => 'idp.key',
    'certificate' => 'idp.crt',
    'auth' => 'users',
    'userid.attribute' => 'uid',
    'SingleSignOnServiceBinding' => [
        'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect',
        'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST',
    ],
    'SingleLogoutServiceBinding' => [
        'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect',
        'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST',
    ],
    'signature.algorithm' => 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
    'saml20.sign.assertion' => true,
    'saml20.sign.response' => true,
    'sign.logout' => true,
    'NameIDFormat' => 'urn:oasis:names:tc:SAML:2.0:nameid-format:transient',
    'attributes.NameFormat' => 'urn:oasis:names:tc:SAML:2.0:attrname-format:basic',
    'assertion.lifetime' => 300,
    'authproc' => [
        10 => ['class' => 'saml:TransientNameID'],
        11 => ['class' => 'saml:PersistentNameID', 'attribute' => 'uid', 'NameQualifier' => true,
            'SPNameQualifier' => true],
        12 => ['class' => 'saml:AttributeNameID', 'attribute' => 'uid',
            'Format' => 'urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified'],
        13 => ['class' => 'saml:AttributeNameID', 'attribute' => 'email',
            'Format' => 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress'],
    ],
];
