package report

import (
	"fmt"
	"io"
	"unicode"
	"unicode/utf8"
)

// terminal passes text on to a terminal with every control character
// shown as an escape ("\x1b", "\u202e") instead of acted on: subjects, DNs
// and names come from certificates and directories anyone may fill, and a
// raw escape sequence could rewrite or hide lines of a report (a removal
// among them). Newlines and the spaces tabwriter pads with pass as they
// are; a tab inside a value is shown as "\t".
type terminal struct{ w io.Writer }

func (t terminal) Write(p []byte) (int, error) {
	clean := true
	for i := 0; i < len(p); {
		r, size := utf8.DecodeRune(p[i:])
		if unsafe(r, size) {
			clean = false
			break
		}
		i += size
	}
	if clean {
		return t.w.Write(p)
	}
	out := make([]byte, 0, len(p)+16)
	for i := 0; i < len(p); {
		r, size := utf8.DecodeRune(p[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			out = fmt.Appendf(out, `\x%02x`, p[i])
		case unsafe(r, size) && r < 0x100:
			out = fmt.Appendf(out, `\x%02x`, r)
		case unsafe(r, size):
			out = fmt.Appendf(out, `\u%04x`, r)
		default:
			out = append(out, p[i:i+size]...)
		}
		i += size
	}
	if _, err := t.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// unsafe is a rune a terminal would act on rather than show: C0 and C1
// controls but the newline, DEL, bidirectional overrides, and bytes that
// are not UTF-8.
func unsafe(r rune, size int) bool {
	if r == '\n' {
		return false
	}
	return (r == utf8.RuneError && size == 1) || unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r)
}
