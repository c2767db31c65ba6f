package selfprofile

import (
	"net/http"
	"strings"
	"testing"
	"unsafe"
)

// Method answers the package's constant, not the request's string: a
// summary's key keeps no memory of the request it came from.
func TestMethodIsTheConstant(t *testing.T) {
	for _, m := range standardMethods {
		got := Method(strings.Clone(m))
		if got != m || unsafe.StringData(got) != unsafe.StringData(m) {
			t.Errorf("Method(%q) is not the constant", m)
		}
	}
	if got := Method(strings.Clone("FROB")); got != OtherMethod || unsafe.StringData(got) != unsafe.StringData(OtherMethod) {
		t.Errorf("Method(FROB) = %q", got)
	}
	if len(standardMethods) != 9 || Method(http.MethodPatch) != http.MethodPatch {
		t.Errorf("standard methods %v", standardMethods)
	}
}
