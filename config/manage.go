package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ManageFile is the file that makes a folder without app.py, wsgi.py or *.wsgi a Django
// project: it names the project's settings module.
const ManageFile = "manage.py"

// maxManageBytes bounds the manage.py the host reads: startproject's is under 1 KiB.
const maxManageBytes = 256 << 10

// settingsCall is the only statement of manage.py the host understands, as
// django-admin startproject writes it.
const settingsCall = `os.environ.setdefault("DJANGO_SETTINGS_MODULE", "PROJECT.settings")`

// djangoSettings reads the settings module a Django project's manage.py names in its
// os.environ.setdefault("DJANGO_SETTINGS_MODULE", "...") call, without running it: the
// file is the tenant's, so it is only tokenized (comments and strings told apart from
// code) and the call must be written with two plain string literals. The module name
// must be a dotted Python name. Any other form, or two calls naming different modules,
// is an error that names the file and the form to write.
func djangoSettings(dir string) (string, error) {
	path := filepath.Join(dir, ManageFile)
	// Through os.Root, a symlink is followed only while it stays inside the app folder:
	// a tenant's manage.py never makes the host read another file.
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", err
	}
	defer root.Close()
	if st, err := root.Stat(ManageFile); err != nil || !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file inside the app folder (a symlink may not leave it)", path)
	}
	f, err := root.Open(ManageFile)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	src, err := io.ReadAll(io.LimitReader(f, maxManageBytes+1))
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if len(src) > maxManageBytes {
		return "", fmt.Errorf("%s is larger than %d KiB, which no manage.py needs: the host reads only "+
			"its %s line; set entrypoint = \"PROJECT.wsgi:application\" and DJANGO_SETTINGS_MODULE in [env] "+
			"of wasmwsgi.toml instead", path, maxManageBytes>>10, settingsCall)
	}
	name, err := findSettingsCall(string(src))
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return name, nil
}

// pyToken is one token of Python source: a name, a string literal (its prefix and its
// text between the quotes), or any other single character outside whitespace.
type pyToken struct {
	kind   byte // 'n' name, 's' string, 'p' punctuation
	text   string
	prefix string // a string's prefix, lower case ("", "r", "f", "rb", ...)
	line   int
}

var errNoSettingsCall = errors.New("it names no settings module")

// findSettingsCall returns the module of the settings call in src.
func findSettingsCall(src string) (string, error) {
	toks, err := pyTokens(src)
	if err != nil {
		return "", err
	}
	want := []string{"os", ".", "environ", ".", "setdefault", "("}
	found, foundLine := "", 0
	for i := 0; i+len(want) <= len(toks); i++ {
		match := true
		for j, w := range want {
			if toks[i+j].kind == 's' || toks[i+j].text != w {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		args := toks[i+len(want):]
		if len(args) == 0 || args[0].kind != 's' || args[0].text != "DJANGO_SETTINGS_MODULE" {
			continue
		}
		line := args[0].line
		shape := len(args) >= 4 && args[0].prefix == "" && args[1].text == "," && args[2].kind == 's' &&
			(args[3].text == ")" || (args[3].text == "," && len(args) >= 5 && args[4].text == ")"))
		if !shape || args[2].prefix != "" {
			return "", fmt.Errorf("line %d: the DJANGO_SETTINGS_MODULE call is not written as %s with two plain "+
				"string literals, the only form the host reads (it does not run manage.py): write it so, or set "+
				"entrypoint = \"PROJECT.wsgi:application\" and DJANGO_SETTINGS_MODULE in [env] of wasmwsgi.toml",
				line, settingsCall)
		}
		name := args[2].text
		if !dottedName(name) {
			return "", fmt.Errorf("line %d: DJANGO_SETTINGS_MODULE %q is not a dotted module name such as "+
				"\"mysite.settings\"", line, name)
		}
		if found != "" && found != name {
			return "", fmt.Errorf("lines %d and %d set DJANGO_SETTINGS_MODULE to %q and to %q: keep one %s",
				foundLine, line, found, name, settingsCall)
		}
		found, foundLine = name, line
	}
	if found == "" {
		return "", fmt.Errorf("%w: a Django project's manage.py holds %s (django-admin startproject writes "+
			"it): add it, or set entrypoint = \"module:callable\" in wasmwsgi.toml", errNoSettingsCall, settingsCall)
	}
	return found, nil
}

// dottedName reports whether s is a dotted name of ASCII Python identifiers.
func dottedName(s string) bool {
	for _, part := range strings.Split(s, ".") {
		if part == "" || part[0] >= '0' && part[0] <= '9' {
			return false
		}
		for _, c := range part {
			if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				return false
			}
		}
	}
	return true
}

// pyTokens splits Python source into names, string literals and single characters,
// dropping comments and whitespace. A string's text is kept as written between its
// quotes (escapes are not decoded: a module name has none). An unterminated string is
// an error.
func pyTokens(src string) ([]pyToken, error) {
	var toks []pyToken
	line := 1
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\\':
			i++
		case c == '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'':
			tok, n, err := pyString(src[i:], "", line)
			if err != nil {
				return nil, err
			}
			toks = append(toks, tok)
			line += strings.Count(src[i:i+n], "\n")
			i += n
		case c == '_' || c < utf8.RuneSelf && unicode.IsLetter(rune(c)) || c >= utf8.RuneSelf:
			j := i
			for j < len(src) {
				r, size := utf8.DecodeRuneInString(src[j:])
				if r != '_' && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
					break
				}
				j += size
			}
			if j == i { // a character that starts no name
				_, size := utf8.DecodeRuneInString(src[i:])
				toks = append(toks, pyToken{kind: 'p', text: src[i : i+size], line: line})
				i += size
				continue
			}
			word := src[i:j]
			if j < len(src) && (src[j] == '"' || src[j] == '\'') && stringPrefix(word) {
				tok, n, err := pyString(src[j:], strings.ToLower(word), line)
				if err != nil {
					return nil, err
				}
				toks = append(toks, tok)
				line += strings.Count(src[j:j+n], "\n")
				i = j + n
				continue
			}
			toks = append(toks, pyToken{kind: 'n', text: word, line: line})
			i = j
		default:
			toks = append(toks, pyToken{kind: 'p', text: string(c), line: line})
			i++
		}
	}
	return toks, nil
}

// stringPrefix reports whether w is a prefix of a Python string literal.
func stringPrefix(w string) bool {
	switch strings.ToLower(w) {
	case "r", "u", "b", "f", "br", "rb", "fr", "rf":
		return true
	}
	return false
}

// pyString reads the string literal at the start of s (after its prefix) and returns
// its token and its length in bytes.
func pyString(s, prefix string, line int) (pyToken, int, error) {
	quote := s[:1]
	if strings.HasPrefix(s, quote+quote+quote) {
		quote = s[:3]
	}
	for i := len(quote); i < len(s); i++ {
		switch {
		case s[i] == '\\':
			i++ // the escaped character never ends the string, raw or not
		case len(quote) == 1 && s[i] == '\n':
			return pyToken{}, 0, fmt.Errorf("line %d: a string is not closed on its line", line)
		case strings.HasPrefix(s[i:], quote):
			return pyToken{kind: 's', text: s[len(quote):i], prefix: prefix, line: line}, i + len(quote), nil
		}
	}
	return pyToken{}, 0, fmt.Errorf("line %d: a string is not closed", line)
}
