let
  mk = name: deps: derivation {
    inherit name;
    system = "x86_64-linux";
    builder = "/bin/sh";
    args = [ "-c" "echo ${name} > $out; for d in ${toString deps}; do /bin/cat $d >> $out; done" ];
    nonce = "rec-2026-11-29";
  };
  a = mk "a" [];
  b = mk "b" [ a ];
in {
  inherit a b;
  c = derivation {
    name = "c";
    system = "x86_64-linux";
    builder = "/bin/sh";
    args = [ "-c" "echo c > $out; /bin/cat ${b} >> $out" ];
    requiredSystemFeatures = [ "big-parallel" ];
    preferLocalBuild = true;
  };
}
