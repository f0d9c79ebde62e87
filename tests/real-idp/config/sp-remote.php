<?php
// Prints SimpleSAMLphp's saml20-sp-remote.php for the SP metadata files given, read by
// SimpleSAMLphp's own metadata parser (what its admin "metadata converter" page does).
require_once '/usr/share/simplesamlphp/lib/_autoload.php';

$out = "<?php\n";
foreach (array_slice($argv, 1) as $file) {
    $entities = SimpleSAML\Metadata\SAMLParser::parseDescriptorsString(trim(file_get_contents($file)));
    foreach ($entities as $id => $parser) {
        $md = $parser->getMetadata20SP();
        if ($md === null) {
            continue;
        }
        unset($md['entityDescriptor'], $md['expire']);
        $out .= '$metadata[' . var_export($id, true) . '] = ' . var_export($md, true) . ";\n";
    }
}
echo $out;
