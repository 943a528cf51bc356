package limits

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load reads the config file at path, expands ${VAR} from the environment, decodes
// it strictly, fills the defaults and validates the result. An empty path gives
// Default(). Every problem of the file is reported at once.
func Load(path string) (*Config, error) {
	if path == "" {
		return Default(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	return Parse(data, path)
}

// Parse is Load for a file already read; name is used in error messages.
func Parse(data []byte, name string) (*Config, error) {
	c, decodeErr := decode(expandEnv(data), name)
	if c == nil {
		return nil, fmt.Errorf("%s: %w", name, decodeErr)
	}

	// A value of the wrong type leaves its field unset and decoding goes on, so
	// the rest of the file is still validated and every problem is listed.
	c.fillDefaults()
	if err := errors.Join(decodeErr, inFile(name, c.Validate())); err != nil {
		return nil, err
	}
	return c, nil
}

// inFile puts the file name before each problem, one per line.
func inFile(name string, err error) error {
	var errs []error
	for _, e := range flatten(err) {
		errs = append(errs, fmt.Errorf("%s: %w", name, e))
	}
	return errors.Join(errs...)
}

// envRef matches ${NAME}. A bare $NAME is left alone so that passwords and
// patterns holding a '$' survive.
var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandEnv replaces each ${NAME} with the environment variable NAME; an unset
// variable becomes empty, as in a shell, and Validate reports the empty value
// where one is required.
func expandEnv(data []byte) []byte {
	return envRef.ReplaceAllFunc(data, func(m []byte) []byte {
		return []byte(os.Getenv(string(m[2 : len(m)-1])))
	})
}

// decode reads one YAML document strictly. It returns a config along with type
// problems (unknown keys, bad values), and no config when the YAML itself does not
// parse. Pool fields where zero is a real choice start at their "unset" value so
// that an explicit 0 can be told apart.
func decode(data []byte, name string) (*Config, error) {
	c := &Config{Pool: Pool{MinWorkers: -1, MaxQueueSize: DefaultMaxQueueSize}}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(c)
	if errors.Is(err, io.EOF) {
		return c, nil // an empty file is an all-defaults config
	}
	var te *yaml.TypeError
	if err != nil && !errors.As(err, &te) {
		return nil, err
	}
	var extra yaml.Node
	if dec.Decode(&extra) == nil {
		return nil, fmt.Errorf("line %d: only one YAML document is allowed", extra.Line)
	}
	if te != nil {
		return c, typeErrors(name, te)
	}
	return c, nil
}

// unknownField rewrites yaml.v3's "field x not found in type limits.Pool".
var unknownField = regexp.MustCompile(`^line (\d+): field (\S+) not found in type \S+$`)

// typeErrors turns yaml.v3's collected problems into one error each, of the form
// "FILE:LINE: message".
func typeErrors(name string, te *yaml.TypeError) error {
	errs := make([]error, 0, len(te.Errors))
	for _, msg := range te.Errors {
		errs = append(errs, errors.New(name+":"+rewriteDecodeMessage(msg)))
	}
	return errors.Join(errs...)
}

func rewriteDecodeMessage(msg string) string {
	if m := unknownField.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("%s: unknown key %q", m[1], m[2])
	}
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		return rest // "12: invalid duration ..."
	}
	return " " + msg
}
