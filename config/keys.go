package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/v2"
)

// Unmarshal decodes a koanf path into out, strictly: durations may be written as "5s"
// and lists as "a,b", and a key out has no field for is an UnknownKeyError. origin says
// how and where the user wrote each key, so that the error names it that way.
func Unmarshal(k *koanf.Koanf, at string, out any, origin func(key string) KeyOrigin) error {
	raw := k.Raw()
	if at != "" {
		raw = k.Cut(at).Raw()
	}
	t := reflect.TypeOf(out)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var unknown []string
	unknownKeys(raw, t, at, &unknown)
	if len(unknown) > 0 {
		sort.Strings(unknown)
		known := settingKeys(t, at, raw)
		errs := make([]error, len(unknown))
		for i, key := range unknown {
			e := &UnknownKeyError{Key: key, Origin: KeyOrigin{Name: key}, Nearest: nearestKey(key, known)}
			if origin != nil {
				e.Origin = origin(key)
			}
			errs[i] = e
		}
		sort.SliceStable(errs, func(i, j int) bool { // a file's keys in the order of its lines
			return errs[i].(*UnknownKeyError).Origin.line < errs[j].(*UnknownKeyError).Origin.line
		})
		return errors.Join(errs...)
	}
	err := k.UnmarshalWithConf(at, out, koanf.UnmarshalConf{
		Tag: "koanf",
		DecoderConfig: &mapstructure.DecoderConfig{
			DecodeHook: mapstructure.ComposeDecodeHookFunc(
				noBoolConversions,
				mapstructure.StringToTimeDurationHookFunc(),
				mapstructure.StringToSliceHookFunc(","), // lists from the environment
			),
			ErrorUnused:      true, // refuses any unknown key the walk above missed
			WeaklyTypedInput: true,
			Result:           out,
			TagName:          "koanf",
		},
	})
	if err == nil {
		return nil
	}
	return typeErrors(err, k, at, t, origin)
}

// noBoolConversions refuses true or false for a key that is not a switch, and a
// number for one that is. The weakly typed decoding that turns the environment's text
// into numbers would otherwise take `timeout = true` as one nanosecond.
func noBoolConversions(from, to reflect.Type, data any) (any, error) {
	number := func(k reflect.Kind) bool { return k >= reflect.Int && k <= reflect.Float64 }
	to = indirect(to) // an optional setting is a pointer
	switch {
	case from.Kind() == reflect.Bool && to.Kind() != reflect.Bool && to.Kind() != reflect.Interface,
		to.Kind() == reflect.Bool && number(from.Kind()):
		return nil, fmt.Errorf("%v is not a %s", data, to)
	}
	return data, nil
}

// TypeError is a key whose value is of the wrong type, such as `limits = 5` or
// WASMWSGI_LIMITS__TIMEOUT=soon.
type TypeError struct {
	Key    string // dotted: "limits"
	Origin KeyOrigin
	Value  any
	// Want says what the key takes: "a whole number", "a table of settings"...
	Want string
	// Example is one key of the table the key names, for a key that takes a table.
	Example string
}

func (e *TypeError) Error() string {
	var b strings.Builder
	name := e.Origin.start(&b, e.Key)
	value := fmt.Sprint(e.Value)
	if str, ok := e.Value.(string); ok {
		value = strconv.Quote(str)
	}
	fmt.Fprintf(&b, "%s = %s is not %s", name, value, e.Want)
	if e.Example != "" {
		spell := e.Origin.Spell
		if spell == nil {
			spell = func(key string) string { return key }
		}
		fmt.Fprintf(&b, "; set its keys one by one, such as %s", spell(e.Example))
	}
	return b.String()
}

// typeErrors turns the decoder's errors about the values of keys into TypeErrors that
// name each key as the user wrote it; any other error is returned as it is.
func typeErrors(err error, k *koanf.Koanf, at string, t reflect.Type, origin func(key string) KeyOrigin) error {
	var out []error
	var walk func(error) bool
	walk = func(err error) bool {
		if joined, ok := err.(interface{ Unwrap() []error }); ok {
			all := true
			for _, e := range joined.Unwrap() {
				all = walk(e) && all
			}
			return all
		}
		var de *mapstructure.DecodeError
		if !errors.As(err, &de) {
			return false
		}
		key := joinKey(at, de.Name())
		ft := fieldType(t, de.Name())
		if ft == nil {
			return false
		}
		te := &TypeError{Key: key, Origin: KeyOrigin{Name: key}, Value: k.Get(key), Want: describeType(ft)}
		if origin != nil {
			te.Origin = origin(key)
		}
		if ft.Kind() == reflect.Struct {
			if keys := settingKeys(ft, key, nil); len(keys) > 0 {
				te.Example = keys[0].key
			}
		}
		out = append(out, te)
		return true
	}
	if !walk(err) {
		return err
	}
	return errors.Join(out...)
}

// fieldType returns the type of the field a dotted key names below t, or nil.
func fieldType(t reflect.Type, key string) reflect.Type {
	for _, part := range strings.Split(key, ".") {
		switch {
		case t.Kind() == reflect.Struct:
			t = fieldKeys(t)[strings.ToLower(part)]
		case t.Kind() == reflect.Map:
			t = indirect(t.Elem())
		default:
			return nil
		}
		if t == nil {
			return nil
		}
	}
	return t
}

// describeType says in the words of a TOML file what a value of type t is.
func describeType(t reflect.Type) string {
	switch {
	case t == reflect.TypeOf(time.Duration(0)):
		return `a duration such as "5s" or "2m"`
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "a whole number"
	case t.Kind() == reflect.String:
		return "text"
	case t.Kind() == reflect.Slice:
		return `a list such as ["a", "b"]`
	case t.Kind() == reflect.Struct, t.Kind() == reflect.Map:
		return "a table of settings"
	}
	return "a " + t.Kind().String()
}

// KeyOrigin tells how and where the user wrote a key, so that an error about the key
// names it the same way.
type KeyOrigin struct {
	// Name is the key as the user wrote it: "limits.timeout" in a TOML file,
	// "WASMWSGI_LIMITS__TIMEOUT" in the environment.
	Name string
	// Where is the place that set it, such as "/etc/wasmwsgi.toml, line 3"; "" when
	// Name says it.
	Where string
	// Spell writes another key the way Name is written, for a suggestion; nil writes
	// it as is.
	Spell func(key string) string
	// Fix says what to do when no valid key is near: "remove it (...)".
	Fix string

	line int // the line of a file that sets the key, or 0
}

// start writes where the key was set, if that is known, to b, and returns the key as
// the user wrote it (key itself when that is not known), for an error about it.
func (o KeyOrigin) start(b *strings.Builder, key string) string {
	if o.Where != "" {
		b.WriteString(o.Where + ": ")
	}
	if o.Name == "" {
		return key
	}
	return o.Name
}

// UnknownKeyError is a key that names no setting.
type UnknownKeyError struct {
	Key     string // the key, dotted: "limits.timeot"
	Origin  KeyOrigin
	Nearest string // the closest valid key, dotted, or ""
}

func (e *UnknownKeyError) Error() string {
	var b strings.Builder
	name := e.Origin.start(&b, e.Key)
	fmt.Fprintf(&b, "%s is not a setting", name)
	switch {
	case e.Nearest != "":
		spell := e.Origin.Spell
		if spell == nil {
			spell = func(key string) string { return key }
		}
		fmt.Fprintf(&b, "; did you mean %s?", spell(e.Nearest))
	case e.Origin.Fix != "":
		b.WriteString("; " + e.Origin.Fix)
	}
	return b.String()
}

// FileKeys is the origin of the keys of a TOML file: each key is named as written
// there, with the file and, when a scan of the text finds it, the line. fix is
// UnknownKeyError's advice when no valid key is near.
func FileKeys(path, fix string) func(key string) KeyOrigin {
	var text []byte
	var read bool
	return func(key string) KeyOrigin {
		if !read {
			text, _ = os.ReadFile(path)
			read = true
		}
		o := KeyOrigin{Name: key, Where: path, Fix: fix, line: tomlKeyLine(string(text), key)}
		if o.line > 0 {
			o.Where = fmt.Sprintf("%s, line %d", path, o.line)
		}
		return o
	}
}

// fieldKeys maps the keys a struct type takes (lower case, as koanf's decoder matches
// them regardless of case) to the type of each; a ",squash" field brings its own keys.
func fieldKeys(t reflect.Type) map[string]reflect.Type {
	keys := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("koanf"), ",")
		if name == "-" {
			continue
		}
		if strings.Contains(","+opts+",", ",squash,") {
			for k, v := range fieldKeys(indirect(f.Type)) {
				keys[k] = v
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		keys[strings.ToLower(name)] = indirect(f.Type)
	}
	return keys
}

func indirect(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

func joinKey(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// unknownKeys appends to out the keys of m (a koanf tree, below prefix) that t has no
// field for: each leaf below an unknown key, dotted.
func unknownKeys(m map[string]any, t reflect.Type, prefix string, out *[]string) {
	fields := fieldKeys(t)
	for name, v := range m {
		key := joinKey(prefix, name)
		ft, ok := fields[strings.ToLower(name)]
		switch {
		case !ok:
			leafKeys(v, key, out)
		case ft.Kind() == reflect.Struct:
			if sub, ok := v.(map[string]any); ok {
				unknownKeys(sub, ft, key, out)
			}
		case isTableOfStructs(ft):
			// [apps.NAME]: any name, each entry a struct of known keys.
			sub, ok := v.(map[string]any)
			if !ok {
				continue
			}
			for entry, ev := range sub {
				if em, ok := ev.(map[string]any); ok {
					unknownKeys(em, indirect(ft.Elem()), key+"."+entry, out)
				} else {
					*out = append(*out, key+"."+entry)
				}
			}
		}
	}
}

// isTableOfStructs reports whether t is a map of structs, such as the operator's
// [apps.NAME] tables.
func isTableOfStructs(t reflect.Type) bool {
	return t.Kind() == reflect.Map && indirect(t.Elem()).Kind() == reflect.Struct
}

func leafKeys(v any, key string, out *[]string) {
	sub, ok := v.(map[string]any)
	if !ok || len(sub) == 0 {
		*out = append(*out, key)
		return
	}
	for name, v := range sub {
		leafKeys(v, key+"."+name, out)
	}
}

// settingKey is one key a struct type takes; a table (a map field, such as [env])
// takes any key below it.
type settingKey struct {
	key   string
	table bool
}

// settingKeys lists the keys t takes, dotted, below prefix, in order. raw is the tree
// being decoded: a table of structs takes the keys of its struct below each name raw
// has there.
func settingKeys(t reflect.Type, prefix string, raw map[string]any) []settingKey {
	var out []settingKey
	for name, ft := range fieldKeys(t) {
		key := joinKey(prefix, name)
		sub, _ := lookupFold(raw, name).(map[string]any)
		switch {
		case ft.Kind() == reflect.Struct:
			out = append(out, settingKeys(ft, key, sub)...)
		case isTableOfStructs(ft):
			for entry, ev := range sub {
				em, _ := ev.(map[string]any)
				out = append(out, settingKeys(indirect(ft.Elem()), key+"."+entry, em)...)
			}
		case ft.Kind() == reflect.Map:
			out = append(out, settingKey{key, true})
		default:
			out = append(out, settingKey{key, false})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

// lookupFold returns m's value under key, matched regardless of case as the decoder
// matches struct fields; nil when there is none.
func lookupFold(m map[string]any, key string) any {
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return nil
}

// nearestKey is the valid key closest to key, or "" if none is close: by edit distance
// over the whole dotted key, or over its last part ("timeout" at the top level is
// limits.timeout); a key below an unknown table is matched against the tables.
func nearestKey(key string, known []settingKey) string {
	head, typedLast := "", key
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		head, typedLast = key[:i], key[i+1:]
	}
	key, head = strings.ToLower(key), strings.ToLower(head)
	last := strings.ToLower(typedLast)
	best, bestDist := "", -1
	consider := func(candidate string, d int) {
		if bestDist < 0 || d < bestDist {
			best, bestDist = candidate, d
		}
	}
	for _, k := range known {
		if k.table {
			if head != "" && closeEnough(head, k.key) {
				consider(k.key+"."+typedLast, editDistance(head, k.key)) // names in a table keep their case
			}
			continue
		}
		kLast := k.key[strings.LastIndexByte(k.key, '.')+1:]
		if closeEnough(key, k.key) {
			consider(k.key, editDistance(key, k.key))
		}
		if closeEnough(last, kLast) {
			consider(k.key, editDistance(last, kLast))
		}
	}
	return best
}

// closeEnough allows one edit in a word of up to 4 letters, two up to 8, three beyond.
func closeEnough(typed, valid string) bool {
	limit := 3
	switch n := len(typed); {
	case n <= 4:
		limit = 1
	case n <= 8:
		limit = 2
	}
	return editDistance(typed, valid) <= limit
}

// editDistance counts the insertions, deletions, substitutions and swaps of two
// neighbouring bytes that turn a into b (optimal string alignment distance).
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// tomlKeyLine finds the line (from 1) of TOML text that sets key (dotted, as koanf
// flattens it), or of the table or inline table that holds it; 0 if none does. It
// reads table headers and `key = value` lines, not the whole TOML grammar.
func tomlKeyLine(text, key string) int {
	key = strings.ToLower(key)
	table, found := "", 0
	inString := "" // the delimiter of the multi-line string being read
	for i, line := range strings.Split(text, "\n") {
		n := i + 1
		s := strings.TrimSpace(line)
		if inString != "" {
			if strings.Count(s, inString)%2 == 1 {
				inString = ""
			}
			continue
		}
		if s == "" || s[0] == '#' {
			continue
		}
		if s[0] == '[' {
			name := strings.Trim(strings.TrimSpace(strings.SplitN(s, "]", 2)[0]), "[ \t")
			if strings.HasPrefix(s, "[[") {
				name = strings.TrimSpace(strings.Split(s[2:], "]]")[0])
			}
			table = tomlKey(name)
			if found == 0 && (key == table || strings.HasPrefix(key, table+".")) {
				found = n
			}
			continue
		}
		lhs, value, ok := strings.Cut(s, "=")
		if !ok {
			continue
		}
		full := joinKey(table, tomlKey(lhs))
		if key == full {
			return n
		}
		if strings.HasPrefix(key, full+".") {
			found = n // an inline table
		}
		for _, delim := range []string{`"""`, `'''`} {
			if strings.Count(value, delim)%2 == 1 {
				inString = delim
				break
			}
		}
	}
	return found
}

// tomlKey writes a TOML key (`a . "b"`) as koanf does: its parts, unquoted, joined by
// dots, in lower case.
func tomlKey(s string) string {
	var parts []string
	var part strings.Builder
	quote := byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			part.WriteByte(c)
		case c == '"' || c == '\'':
			quote = c
		case c == '.':
			parts = append(parts, part.String())
			part.Reset()
		case c != ' ' && c != '\t':
			part.WriteByte(c)
		}
	}
	parts = append(parts, part.String())
	return strings.ToLower(strings.Join(parts, "."))
}
