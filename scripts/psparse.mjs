// psparse parses PowerShell with tree-sitter-powershell and fails on any
// ERROR or MISSING node, so scripts generated on Linux are known to parse.
//
//   node scripts/psparse.mjs FILE...      one line per file; exit 1 on a syntax error
//   node scripts/psparse.mjs --json       stdin: a JSON array of sources; stdout: per
//                                         source {errors, strings, statements}
//
// Needs node_modules from `npm ci` (tree-sitter, tree-sitter-powershell).
import { readFileSync } from 'node:fs';
import Parser from 'tree-sitter';
// The binding's own file: its package.json "main" lacks the extension ESM wants.
import PowerShell from 'tree-sitter-powershell/bindings/node/index.js';

const parser = new Parser();
parser.setLanguage(PowerShell);

function parse(src) {
  src = src.replace(/^\uFEFF/, ''); // a BOM, as PowerShell reads it
  const tree = parser.parse(src, null, { bufferSize: 2 * src.length + 1024 });
  const errors = [];
  const strings = [];
  const walk = (n) => {
    if (n.type === 'ERROR' || n.isMissing) {
      errors.push(`${n.startPosition.row + 1}:${n.startPosition.column + 1}: ${n.isMissing ? 'missing ' + n.type : 'syntax error near ' + JSON.stringify(n.text.slice(0, 40))}`);
    }
    if (n.type === 'string_literal') {
      strings.push({ type: n.child(0) ? n.child(0).type : '', text: n.text });
    }
    for (let i = 0; i < n.childCount; i++) walk(n.child(i));
  };
  walk(tree.rootNode);
  if (tree.rootNode.hasError && errors.length === 0) errors.push('1:1: parse error');
  let statements = 0;
  const list = tree.rootNode.namedChildren.find((c) => c.type === 'statement_list');
  if (list) statements = list.namedChildCount;
  return { errors, strings, statements };
}

const args = process.argv.slice(2);
if (args[0] === '--json') {
  const sources = JSON.parse(readFileSync(0, 'utf8'));
  process.stdout.write(JSON.stringify(sources.map(parse)) + '\n');
} else {
  if (args.length === 0) {
    console.error('usage: node scripts/psparse.mjs FILE... | --json < sources.json');
    process.exit(2);
  }
  let bad = 0;
  for (const f of args) {
    const r = parse(readFileSync(f, 'utf8'));
    if (r.errors.length) {
      bad++;
      for (const e of r.errors) console.log(`${f}:${e}`);
    } else {
      console.log(`${f}: ok`);
    }
  }
  process.exit(bad ? 1 : 0);
}
