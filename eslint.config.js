// ESLint flat config: typescript-eslint strict rules for all TypeScript, plus an isomorphism guard for src/core.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'var/**', 'coverage/**', 'bench/out/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node, ...globals.browser } },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'off',
    },
  },
  {
    // src/core runs unchanged in browsers, Web Workers and Node: no Node built-ins, no DOM.
    files: ['src/core/**/*.ts'],
    ignores: ['src/core/**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          // Exact module names (a pattern like "crypto" would also match ../crypto/*.ts).
          paths: ['fs', 'path', 'os', 'crypto', 'zlib', 'buffer', 'stream', 'child_process'].map(
            (name) => ({ name, message: 'src/core must stay isomorphic: no Node built-ins.' }),
          ),
          patterns: [
            { group: ['node:*'], message: 'src/core must stay isomorphic: no Node built-ins.' },
          ],
        },
      ],
      'no-restricted-globals': [
        'error',
        'document',
        'window',
        'process',
        'Buffer',
        'require',
        '__dirname',
      ],
    },
  },
);
