package calc_test

import (
	"errors"
	"fmt"

	"github.com/calclab/calclab/services/calc"
)

func ExampleEval() {
	for _, expr := range []string{"4 * (2 + 3) - 7 / 2", "2 ** 3 ** 2", "-2 ** 2", "1.5e2 % 7", "1 / (2 - 2)", "9**9**9**9", "2 + x"} {
		v, err := calc.Eval(expr, calc.DefaultLimits)
		if err != nil {
			fmt.Printf("%s: error: %v\n", expr, err)
			continue
		}
		fmt.Printf("%s = %v\n", expr, v)
	}
	// Output:
	// 4 * (2 + 3) - 7 / 2 = 16.5
	// 2 ** 3 ** 2 = 512
	// -2 ** 2 = -4
	// 1.5e2 % 7 = 3
	// 1 / (2 - 2): error: division by zero at position 2
	// 9**9**9**9: error: result overflows float64
	// 2 + x: error: unexpected character "x" at position 4
}

func ExampleCheck() {
	err := calc.Check("(1 + 2", calc.DefaultLimits)
	var e *calc.Error
	if errors.As(err, &e) {
		fmt.Println(e.Kind, "|", e.Msg, "| pos", e.Pos)
	}
	fmt.Println(errors.Is(err, calc.ErrSyntax), errors.Is(err, calc.ErrTooLong))
	// Output:
	// syntax error | unbalanced parenthesis at position 0 | pos 0
	// true false
}

func ExampleEvalOperation() {
	v, err := calc.EvalOperation("power", []float64{2, 3, 2}) // (2**3)**2
	fmt.Println(v, err)
	_, err = calc.EvalOperation("division", []float64{1, 0})
	fmt.Println(err)
	// Output:
	// 64 <nil>
	// division by zero (operand 1 is 0)
}
