import type { z } from 'zod';

/** What a zod issue expected, as the tail of an error line: "expected a number >= 1". */
export function describeIssue(issue: z.core.$ZodIssue): string {
  // A schema's own message (`{ error: 'expected ...' }`) says it best.
  if (issue.message.startsWith('expected ')) return issue.message;
  switch (issue.code) {
    case 'too_small':
      if (issue.origin === 'array') return `expected a list of at least ${String(issue.minimum)} item${issue.minimum === 1 ? '' : 's'}`;
      if (issue.origin === 'string') return 'expected a non-empty string';
      return `expected a number ${issue.inclusive === false ? '>' : '>='} ${String(issue.minimum)}`;
    case 'too_big':
      return `expected a number ${issue.inclusive === false ? '<' : '<='} ${String(issue.maximum)}`;
    case 'invalid_type':
      return describeType(issue.expected);
    case 'invalid_value':
      return `expected one of ${issue.values.map((v) => String(v)).join(', ')}`;
    case 'invalid_format':
      return issue.format === 'url' ? 'expected an http(s) URL' : `expected ${issue.format}`;
    case 'invalid_key': {
      const inner = issue.issues[0];
      return inner ? describeIssue(inner) : issue.message;
    }
    default:
      return issue.message;
  }
}

function describeType(expected: string): string {
  switch (expected) {
    case 'int':
      return 'expected a whole number';
    case 'number':
      return 'expected a number';
    case 'string':
      return 'expected a string';
    case 'boolean':
      return 'expected true or false';
    case 'array':
      return 'expected a list';
    case 'object':
    case 'record':
      return 'expected an object (a mapping of names to values)';
    default:
      return `expected ${expected}`;
  }
}
