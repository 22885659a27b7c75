// A node --test reporter for the interop suite: one `PASS <name>` or
// `FAIL <name>` line per test (suites are not counted), the error of each
// failure with what the test printed about it (screenshot and log paths), the
// test process's own output and diagnostics, and last `N passed, M failed`.
// Used by run.sh: node --test --test-reporter=./reporter.mjs

export default async function* reporter(source) {
  let passed = 0;
  let failed = 0;
  const failures = [];
  for await (const event of source) {
    const { type, data } = event;
    if (type === 'test:stdout' || type === 'test:stderr') {
      yield data.message;
    } else if (type === 'test:diagnostic') {
      yield `# ${data.message}\n`;
    } else if (type === 'test:pass' || type === 'test:fail') {
      if (data.details?.type === 'suite') {
        if (type === 'test:fail' && data.details?.error?.failureType !== 'subtestsFailed') {
          // A hook of the suite failed (before/after): count it as a failure.
          failed++;
          failures.push(data.name);
          yield `FAIL ${data.name} (hook)\n${indent(errorText(data.details.error))}\n`;
        }
        continue;
      }
      const ms = Math.round(data.details?.duration_ms ?? 0);
      if (type === 'test:pass' && !data.skip) {
        passed++;
        yield `PASS ${data.name} (${ms} ms)\n`;
      } else if (type === 'test:fail') {
        failed++;
        failures.push(data.name);
        yield `FAIL ${data.name} (${ms} ms)\n${indent(errorText(data.details.error))}\n`;
      }
    }
  }
  if (failures.length) yield `\nfailed:\n${failures.map((f) => `  ${f}\n`).join('')}`;
  yield `\n${passed} passed, ${failed} failed\n`;
}

function errorText(e) {
  if (!e) return 'unknown failure';
  const inner = e.cause ?? e;
  return String(inner.stack ?? inner.message ?? inner);
}

function indent(text) {
  return text.split('\n').map((l) => `    ${l}`).join('\n');
}
