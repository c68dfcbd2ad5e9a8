// Lint for the whole tree (`npm run lint`, run by `npm test`): ESLint's and typescript-eslint's recommended
// rules, plus the architecture's import boundary: core/ is the portable part that training, the server and
// the browser share, so it imports none of them (nor tfjs); serve/ and web/ import only core/ and their own
// files. Formatting is Prettier's (`npm run format`), not ESLint's.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const outside = (dirs, why) => ({
  regex: `(^|/)(${dirs.join('|')})/`,
  message: `${why} (shared code belongs in core/; see CONTRIBUTING.md)`,
});
const tfjs = { regex: '^@tensorflow/', message: 'tfjs stays out of core/ and serve/: the server runs onnxruntime' };

export default tseslint.config(
  { ignores: ['node_modules/', 'web/dist/', 'native/build/', 'models/', '**/*.py'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2022, sourceType: 'module', globals: { console: 'readonly', process: 'readonly' } },
    // A leading underscore marks a binding kept on purpose (destructuring that drops fields, unused callback args).
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        {
          argsIgnorePattern: '^_',
          varsIgnorePattern: '^_',
          destructuredArrayIgnorePattern: '^_',
          ignoreRestSiblings: true,
        },
      ],
    },
  },
  {
    files: ['core/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [outside(['train', 'serve', 'web', 'bin', 'bench'], 'core/ imports nothing outside core/'), tfjs] },
      ],
    },
  },
  {
    files: ['serve/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [outside(['train', 'web', 'bin', 'bench'], 'serve/ imports only core/ and serve/'), tfjs] },
      ],
    },
  },
  {
    files: ['web/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [outside(['train', 'serve', 'bin', 'bench'], 'web/ imports only core/ and web/')] },
      ],
    },
  },
);
